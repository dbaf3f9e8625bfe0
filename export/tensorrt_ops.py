"""Data: the ONNX operators TensorRT's ONNX parser supports (used by tensorrt_compat.py).

Source: onnx/onnx-tensorrt docs/operators.md at commit 6d0ab7be324d02c7feb3a306b6fdbeae84f71ddc
(the TensorRT 8.5 parser's support matrix, opsets up to 17), transcribed and checked against the
stored file with the search tool (rows "Y" -> SUPPORTED, "N" -> UNSUPPORTED).

Later additions (LATER): the TensorRT 8.6 release notes (quoted in NVIDIA/TensorRT issue 3657)
recommend opset 17 LayerNormalization and opset 18 GroupNormalization; the TensorRT 10 parser
(onnx-tensorrt main branch) reads opsets up to 20. They are not in the 8.5 matrix, so a model
that uses them, or opset > 17, is reported as needing TensorRT 10.
"""

PARSER = 'TensorRT 8.5'
MAX_OPSET = 17
SUPPORTED = frozenset({
    'Abs', 'Acos', 'Acosh', 'Add', 'And', 'ArgMax', 'ArgMin', 'Asin', 'Asinh', 'Atan', 'Atanh',
    'AveragePool', 'BatchNormalization', 'Cast', 'Ceil', 'Celu', 'Clip', 'Concat', 'Constant',
    'ConstantOfShape', 'Conv', 'ConvTranspose', 'Cos', 'Cosh', 'CumSum', 'DepthToSpace',
    'DequantizeLinear', 'Div', 'Dropout', 'Einsum', 'Elu', 'Equal', 'Erf', 'Exp', 'Expand',
    'EyeLike', 'Flatten', 'Floor', 'Gather', 'GatherElements', 'GatherND', 'Gemm',
    'GlobalAveragePool', 'GlobalLpPool', 'GlobalMaxPool', 'Greater', 'GreaterOrEqual', 'GridSample',
    'GRU', 'HardSwish', 'HardSigmoid', 'Identity', 'If', 'ImageScaler', 'InstanceNormalization',
    'IsNaN', 'LeakyRelu', 'Less', 'LessOrEqual', 'Log', 'LogSoftmax', 'Loop', 'LRN', 'LSTM',
    'LpNormalization', 'LpPool', 'MatMul', 'Max', 'MaxPool', 'Mean', 'MeanVarianceNormalization',
    'Min', 'Mod', 'Mul', 'Neg', 'NonMaxSuppression', 'NonZero', 'Not', 'OneHot', 'Or', 'Pad',
    'ParametricSoftplus', 'Pow', 'PRelu', 'QuantizeLinear', 'RandomNormal', 'RandomNormalLike',
    'RandomUniform', 'RandomUniformLike', 'Range', 'Reciprocal', 'ReduceL1', 'ReduceL2',
    'ReduceLogSum', 'ReduceLogSumExp', 'ReduceMax', 'ReduceMean', 'ReduceMin', 'ReduceProd',
    'ReduceSum', 'ReduceSumSquare', 'Relu', 'Reshape', 'Resize', 'ReverseSequence', 'RNN',
    'RoiAlign', 'Round', 'ScaledTanh', 'Scan', 'Scatter', 'ScatterElements', 'ScatterND', 'Selu',
    'Shape', 'Shrink', 'Sigmoid', 'Sign', 'Sin', 'Sinh', 'Size', 'Slice', 'Softmax', 'Softplus',
    'Softsign', 'SpaceToDepth', 'Split', 'Sqrt', 'Squeeze', 'Sub', 'Sum', 'Tan', 'Tanh',
    'ThresholdedRelu', 'Tile', 'TopK', 'Transpose', 'Trilu', 'Unsqueeze', 'Upsample', 'Where', 'Xor',
})
UNSUPPORTED = frozenset({
    'Bernoulli', 'BitShift', 'BlackmanWindow', 'Compress', 'ConcatFromSequence', 'ConvInteger',
    'DFT', 'Det', 'DynamicQuantizeLinear', 'HammingWindow', 'HannWindow', 'Hardmax', 'IsInf',
    'MatMulInteger', 'MaxRoiPool', 'MaxUnpool', 'MelWeightMatrix', 'Multinomial',
    'NegativeLogLikelihoodLoss', 'Optional', 'OptionalGetElement', 'OptionalHasElement',
    'QLinearConv', 'QLinearMatMul', 'STFT', 'SequenceAt', 'SequenceConstruct', 'SequenceEmpty',
    'SequenceErase', 'SequenceInsert', 'SequenceLength', 'SequenceMap', 'SoftmaxCrossEntropyLoss',
    'SplitToSequence', 'StringNormalizer', 'TfIdfVectorizer', 'Unique',
})
LATER_MIN_TENSORRT = '10.0'
LATER_MAX_OPSET = 20
LATER = frozenset({
    'LayerNormalization', 'GroupNormalization',
})
# op -> (input indices that must be initializers/constants, note from the matrix)
RESTRICTIONS = {
    'Conv': ((1,), '2D or 3D convolutions only; weights W must be an initializer (8.4 matrix)'),
    'ConvTranspose': ((1,), '2D or 3D deconvolutions only; weights W must be an initializer'),
    'InstanceNormalization': ((1, 2), 'scale and B must be initializers; input rank 3 to 5'),
    'CumSum': ((1,), 'axis must be an initializer'),
    'Slice': ((3,), 'axes must be an initializer'),
    'Squeeze': ((1,), 'axes must be an initializer'),
    'Unsqueeze': ((1,), 'axes must be a constant tensor'),
    'TopK': ((1,), 'K must be an initializer'),
    'DequantizeLinear': ((), 'x_zero_point must be zero'),
    'QuantizeLinear': ((), 'y_zero_point must be zero'),
}
