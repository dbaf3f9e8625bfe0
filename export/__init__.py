"""Export: one module per target format, the bundle writer and the parity gate."""
