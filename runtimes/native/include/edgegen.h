/*
 * edgegen.h - the C API of the edgegen native runtime.
 *
 * Opens an exported bundle (manifest.json + the files it lists), runs its pipeline on a
 * network backend (OpenVINO; TensorRT where the library was built with it) and returns
 * samples: the sampler plans stored in it (or a plan the caller passes as JSON), or the
 * token loop of token models (VQ-VAE prior, DALL-E style; ABI 3), then the bundle's decoder.
 * Latent text-to-image bundles (ABI 4) run their text encoder on the prompt's token ids first;
 * plan models take an init image (image-to-image) and a mask (inpainting).
 *
 *   edgegen_load_params lp;  edgegen_load_params_init(&lp);
 *   edgegen_bundle *b = NULL;
 *   if (edgegen_bundle_load("bundles/ddpm-small", &lp, &b) != EDGEGEN_OK)
 *       fprintf(stderr, "%s\n", edgegen_last_error());
 *   edgegen_sample_params sp;  edgegen_sample_params_init(&sp);
 *   sp.n = 16; sp.seed = 0;
 *   size_t count = 0;  edgegen_sample_count(b, &sp, &count);   // n * C * H * W
 *   float *out = malloc(count * sizeof(float));
 *   edgegen_stats st;
 *   edgegen_sample(b, &sp, out, count, &st);
 *   edgegen_bundle_free(b);
 *
 * Conventions
 *   - Every function returns an edgegen_status; EDGEGEN_OK is 0. On failure,
 *     edgegen_last_error() returns a one-line message for the calling thread
 *     (thread-local; valid until the next failing call on that thread).
 *   - Out-parameters come last. NULL for a required pointer is EDGEGEN_ERR_INVALID_ARGUMENT,
 *     never a crash. On failure, out-parameters are left untouched, except that
 *     edgegen_bundle_load sets *out to NULL and the sample buffer of a failed
 *     edgegen_sample has unspecified contents (partial results, or none).
 *   - Handles are opaque ids looked up in a registry: a freed handle (or a pointer that
 *     never was a handle) gives EDGEGEN_ERR_INVALID_HANDLE; a freed id is never reused.
 *     Freeing NULL is a no-op that returns EDGEGEN_OK.
 *   - *_params_init() fills the defaults; always call it before setting fields, so a
 *     program keeps working when fields are added.
 *
 * Thread safety
 *   All functions may be called from any thread. Calls on the same bundle are
 *   serialized by a lock inside the bundle (its compiled-model cache is shared);
 *   for parallel sampling, load one bundle per thread. Freeing a bundle while another
 *   thread samples from it is safe: the sample finishes, later calls get
 *   EDGEGEN_ERR_INVALID_HANDLE.
 *
 * Numerics
 *   The plan interpreter follows the Python reference (runtimes/interpreter.py):
 *   float32 arithmetic, affine terms summed left to right, Philox4x32-10 noise with
 *   sample i of a request getting the noise of global index i (so results do not
 *   depend on the batch size).
 */
#ifndef EDGEGEN_H
#define EDGEGEN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define EDGEGEN_API __declspec(dllexport)
#else
#define EDGEGEN_API __attribute__((visibility("default")))
#endif

/* 2: progress callback + edgegen_cancel + EDGEGEN_ERR_CANCELLED.
   3: token models (sampling options, prompt token ids, codes out), decoders, edgegen_decode,
      edgegen_bundle_stages, edgegen_next_tokens. edgegen_sample_params grew: programs built
      against ABI 2 must be rebuilt (the library's SONAME follows the ABI version).
   4: text encoders (latent text-to-image: prompt_tokens on plan models), image inputs
      (init_image, mask, strength) for image-to-image and inpainting; edgegen_sample_params and
      edgegen_stage_info grew at the end (rebuild; source compatible).
   5: prompt text tokenized in C++ (openvino-tokenizers), previews (the decoded x0 prediction),
      per-stage devices, the ExecuTorch backend; edgegen_load_params and edgegen_sample_params
      grew at the end (rebuild; source compatible). */
#define EDGEGEN_ABI_VERSION 5
#define EDGEGEN_MAX_SAMPLES 1000000 /* n above this is rejected (same limit as Python) */

typedef enum edgegen_status {
    EDGEGEN_OK = 0,
    EDGEGEN_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, n = 0 or too large, bad label, seed, buffer size */
    EDGEGEN_ERR_NOT_FOUND = 2,        /* bundle folder or a file it lists does not exist */
    EDGEGEN_ERR_MALFORMED = 3,        /* manifest or plan JSON is not valid / not the expected schema */
    EDGEGEN_ERR_INTEGRITY = 4,        /* a bundle file does not match its sha256 */
    EDGEGEN_ERR_UNSUPPORTED = 5,      /* unknown sampler, plan not stored, backend/device/precision missing */
    EDGEGEN_ERR_INVALID_HANDLE = 6,   /* freed or foreign handle */
    EDGEGEN_ERR_RUNTIME = 7,          /* the network backend failed */
    EDGEGEN_ERR_OUT_OF_MEMORY = 8,
    EDGEGEN_ERR_CANCELLED = 9         /* stopped by the progress callback or edgegen_cancel (ABI 2) */
} edgegen_status;

typedef struct edgegen_bundle edgegen_bundle; /* opaque */

typedef struct edgegen_load_params {
    const char *backend;   /* "openvino" (default), "tensorrt" or "aoti" */
    const char *device;    /* OpenVINO: "CPU" (default), "GPU", "NPU", "AUTO"; TensorRT: "GPU" or "GPU:<index>" */
    const char *precision; /* "fp32" (default); TensorRT also "fp16", "int8" */
    int verify_sha256;     /* 1 (default): check every listed file against its sha256 when loading */
    const char *cache_dir; /* optional: OpenVINO CACHE_DIR / TensorRT engine cache folder; NULL = none */
    const char *calibration_cache; /* TensorRT int8: calibration cache file; NULL = the bundle's */
    int max_batch;         /* TensorRT optimization profile upper bound (default 64) */
    int num_threads;       /* OpenVINO INFERENCE_NUM_THREADS; 0 (default) = the runtime's choice */
    int trust_code;        /* 1: load formats that are code (AOTInductor .pt2, TensorRT engines) from any bundle;
                              0 (default): only those whose sha256 is in this machine's allow-list
                              (SECURITY.md; edgegen/trust.py) */
    /* ABI 5: per-stage devices (OpenVINO device names, as `device`); NULL (default) = `device`. Each
       stage compiles its networks on its own device. A device the backend lacks is
       EDGEGEN_ERR_UNSUPPORTED with a one-line error naming the stage and the device. */
    const char *text_encoder_device; /* the prompt's text encoder (latent text-to-image) */
    const char *denoiser_device;     /* the generator: the plan's network, or the token step network */
    const char *decoder_device;      /* the decoder and the image encoder (image-to-image) */
} edgegen_load_params;

/* Progress callback (ABI 2): called on the sampling thread after every network step of the plan,
   counted across batches: done = 1..total, total = plan steps x number of batches (a guided step,
   one batched call on [x; x], counts once). Return 0 to go on; non-zero stops the call with
   EDGEGEN_ERR_CANCELLED. It must not call edgegen functions on the same bundle (the bundle's lock
   is held; edgegen_cancel is the exception and is safe). */
typedef int (*edgegen_progress_fn)(uint64_t done, uint64_t total, void *user);

/* Preview callback (ABI 5): called on the sampling thread after every `preview_every`-th step of a
   plan (done as for progress: done % preview_every == 0, counted across batches), before the
   progress callback of that step, with the current x0 prediction of the running batch: n samples of
   c x h x w float32 (row-major; sample j of the batch is sample (done - 1) / plan steps * batch_size
   + j of the request), decoded by the bundle's decoder when it has one (latent models: the decoder
   on x0 / scale, as the final decode). The plan says which register holds x0 (plan JSON "preview",
   written by the plan compilers); a plan without one, or a token model, is EDGEGEN_ERR_UNSUPPORTED.
   `image` is valid only during the call. Non-zero stops the call like the progress callback
   (EDGEGEN_ERR_CANCELLED, no result, the bundle stays usable). Same rules as progress: no
   edgegen calls on this bundle except edgegen_cancel. Preview decoding adds decoder calls to the
   stats. */
typedef int (*edgegen_preview_fn)(uint64_t done, uint64_t total, const float *image, uint32_t n, uint32_t c,
                                  uint32_t h, uint32_t w, void *user);

typedef struct edgegen_sample_params {
    const char *sampler;   /* "ddim", "ddpm", ... ; NULL = the bundle's default */
    int steps;             /* 0 = the sampler's default (ddim: bundle default, ddpm: all T) */
    double eta;            /* DDIM eta (default 0) */
    const char *plan_json; /* optional: a whole edgegen.plan/1 JSON; overrides sampler/steps/eta */
    uint32_t n;            /* number of samples, 1..EDGEGEN_MAX_SAMPLES (default 1) */
    uint64_t seed;         /* default 0 */
    const int64_t *labels; /* optional: n labels; NULL = use `label` */
    int64_t label;         /* one label for every sample; -1 (default) = 0..K-1 cycled
                              (the null label for unconditional models) */
    double guidance;       /* classifier-free guidance w; NaN (default) = the bundle's default */
    uint32_t batch_size;   /* samples per network batch (default 64) */
    /* ABI 2 */
    edgegen_progress_fn progress; /* optional (default NULL): see edgegen_progress_fn */
    void *progress_user;          /* passed to progress as `user` (default NULL) */
    /* ABI 3: token models (edgegen_bundle_stages: generator "tokens"). Each token is drawn as
       runtimes/tokens.py specifies (Philox stream 2, sample index = global sample index), so a
       seed gives the same tokens as Python for any batch size. */
    double temperature;           /* NaN (default) = the bundle's default; 0 = greedy */
    int64_t top_k;                /* -1 (default) = the bundle's default; 0 = off */
    double top_p;                 /* NaN (default) = the bundle's default; 1 = off */
    /* Prompt models (condition "prompt"): token ids of the bundle's tokenizer, prompt_count rows of
       prompt_len ids, each right-padded with the pad id to the model's text length (trailing pad ids
       are padding); prompt text: `prompts` below (ABI 5), or `edgegen tokenize BUNDLE "text"`. An
       empty prompt, one longer than the text length, or an id outside the text vocabulary is
       EDGEGEN_ERR_INVALID_ARGUMENT. Label-token models take labels instead. Latent text-to-image
       models (ABI 4; edgegen_stage_info.has_text_encoder) take them too: the text encoder runs once
       per distinct prompt and once on the empty prompt (all padding), the null context of
       classifier-free guidance. */
    const int64_t *prompt_tokens; /* default NULL */
    size_t prompt_len;            /* ids per row (default 0) */
    uint32_t prompt_count;        /* 1 (or 0): one prompt for all n samples; n: one per sample */
    /* Optional: the generated codes, n x image_tokens (row-major, grid order). With codes_out set,
       edgegen_sample may be called with out = NULL and out_count = 0: it then skips the decoder. */
    int64_t *codes_out;           /* default NULL */
    size_t codes_count;           /* n * image_tokens when codes_out is set */
    /* ABI 4: image-to-image and inpainting (plan models whose process is DDPM; edgegen_stage_info
       .takes_image). The image is in pixel space, float32 in the data range (edgegen_bundle_info
       .data_range), image_count images of image_channels x image_height x image_width (row-major),
       which must be the model's sample shape. Latent models encode it with their image encoder (times
       its scale); pixel models start from it. The plan is the stored edit of the requested plan:
       key "<plan>-strength<s>" (s as printf %g), "<plan>-inpaint" (mask, strength NaN) or
       "<plan>-strength<s>-inpaint" (`edgegen export RUN --plans ddim-50@strength0.6,ddim-50@inpaint`);
       one that is not stored is EDGEGEN_ERR_UNSUPPORTED naming the stored ones. With plan_json, the
       plan must take the inputs itself (plans.py edit_plan) and strength stays NaN. */
    const float *init_image;      /* default NULL: no image */
    uint32_t image_count;         /* 1 (or 0): one image for all n samples; n: one per sample */
    uint32_t image_channels, image_height, image_width;  /* the dims of each image */
    /* Inpainting: mask_height x mask_width float32, 1 = generate, 0 = keep (binary); must match the
       image's height and width. The unmasked pixels of every sample equal the image's exactly. */
    const float *mask;            /* default NULL: no mask */
    uint32_t mask_height, mask_width;
    double strength;              /* NaN (default): 0.6 for image-to-image, the stored "-inpaint" plan
                                     with a mask; else in (0, 1] (the fraction of the plan's steps run) */
    /* ABI 5: previews (see edgegen_preview_fn) */
    edgegen_preview_fn preview;   /* default NULL: none */
    void *preview_user;           /* passed to preview as `user` (default NULL) */
    uint32_t preview_every;       /* call preview after every k-th step (default 1; 0 = 1) */
    /* ABI 5: prompt text (prompt models whose bundle has a tokenizer model, edgegen_stage_info
       .has_tokenizer): prompt_count UTF-8 strings (1: one prompt for all n samples; n: one per sample),
       tokenized in C++ exactly as Python's `edgegen tokenize` (edgegen_tokenize). Exclusive with
       prompt_tokens. An empty prompt, characters the tokenizer does not know, or more tokens than the
       text length is EDGEGEN_ERR_INVALID_ARGUMENT with Python's message. */
    const char *const *prompts;   /* default NULL */
} edgegen_sample_params;

typedef struct edgegen_stats {
    double total_seconds;   /* the whole edgegen_sample call */
    double network_seconds; /* inside network calls (inputs in, inference, outputs out) */
    uint64_t network_calls;
} edgegen_stats;

typedef struct edgegen_bundle_info {
    char family[32];
    int64_t sample_shape[8]; /* per-sample dims of the output, e.g. {1, 16, 16} */
    int sample_rank;
    int64_t num_classes;     /* 0 = unconditional */
    int64_t null_label;      /* -1 when the bundle has none */
    double data_range[2];    /* value range of the samples, e.g. {-1, 1} */
    char backend[16];
    char device[32];
    char precision[8];
} edgegen_bundle_info;

/* The stages of a bundle (ABI 3): what edgegen_sample runs and what it needs. */
typedef struct edgegen_stage_info {
    char condition[16];     /* "none", "label", "label_token" or "prompt" */
    char generator[16];     /* "plan" or "tokens" */
    int has_decoder;        /* 1: edgegen_sample returns the decoder's images */
    int64_t image_tokens;   /* token models: codes per sample (codes_out size / n); 0 otherwise */
    int64_t grid[2];        /* their layout (rows, columns) */
    int64_t prompt_length;  /* prompt models: the text length; label-token models: 1; else 0 */
    int64_t text_vocab;     /* prompt models: token ids must be in [0, text_vocab) */
    int64_t pad_id;         /* prompt models: the tokenizer's pad id; -1 otherwise */
    /* ABI 4 */
    int has_text_encoder;   /* 1: prompt ids go through a text encoder (latent text-to-image) */
    int takes_image;        /* 1: init_image / mask / strength apply (DDPM-process plan models) */
    int has_image_encoder;  /* 1: the init image is encoded to latents (latent models) */
    /* ABI 5: the device each stage's networks run on ("" when the bundle has no such stage) */
    char text_encoder_device[32];
    char denoiser_device[32];
    char decoder_device[32]; /* the decoder and the image encoder */
    int has_tokenizer;       /* 1: prompt text works (sample params prompts, edgegen_tokenize) */
} edgegen_stage_info;

/* Defaults and names. */
EDGEGEN_API void edgegen_load_params_init(edgegen_load_params *params);
EDGEGEN_API void edgegen_sample_params_init(edgegen_sample_params *params);
EDGEGEN_API const char *edgegen_status_name(edgegen_status status); /* "EDGEGEN_OK", ... */
EDGEGEN_API const char *edgegen_last_error(void);                   /* "" when none */
EDGEGEN_API const char *edgegen_version(void);
EDGEGEN_API int edgegen_abi_version(void);
/* sizeof of the public structs, for bindings that mirror them (ctypes) */
EDGEGEN_API size_t edgegen_struct_size(const char *name);
/* Comma-separated backends compiled into this library, e.g. "openvino" or "openvino,tensorrt". */
EDGEGEN_API const char *edgegen_backends(void);

/* Load a bundle folder; params NULL = defaults. *out is set to NULL on failure. */
EDGEGEN_API edgegen_status edgegen_bundle_load(const char *path, const edgegen_load_params *params,
                                               edgegen_bundle **out);
EDGEGEN_API edgegen_status edgegen_bundle_free(edgegen_bundle *bundle);
EDGEGEN_API edgegen_status edgegen_bundle_get_info(edgegen_bundle *bundle, edgegen_bundle_info *out);
EDGEGEN_API edgegen_status edgegen_bundle_stages(edgegen_bundle *bundle, edgegen_stage_info *out);
/* Comma-separated keys of the plans stored in the bundle ("ddim-50,ddpm-1000"), copied into
   buf (always NUL-terminated); *needed gets the full length + 1. */
EDGEGEN_API edgegen_status edgegen_bundle_plan_keys(edgegen_bundle *bundle, char *buf, size_t buf_size,
                                                    size_t *needed);

/* How many floats edgegen_sample writes for these params (n * prod(sample shape)); with a decoder,
   the decoder's output. Token models without a decoder write none (0): ask for codes_out. */
EDGEGEN_API edgegen_status edgegen_sample_count(edgegen_bundle *bundle, const edgegen_sample_params *params,
                                                size_t *out_count);
/* Run the pipeline (condition, plan or token loop, decoder); out receives n samples (n, C, H, W)
   float32; out_count must equal edgegen_sample_count. stats may be NULL. Progress counts the
   generator's steps: plan steps, or generated tokens (n_batches x image_tokens).
   Cancellation: when params->progress returns non-zero, or edgegen_cancel(bundle) is called while
   this call runs, it returns EDGEGEN_ERR_CANCELLED within one network step, with
   edgegen_last_error() "cancelled by the callback after D of T steps" (or "... by edgegen_cancel
   ..."). The contents of `out` are then unspecified (no partial result is reported), stats is
   untouched, and the bundle stays usable. */
EDGEGEN_API edgegen_status edgegen_sample(edgegen_bundle *bundle, const edgegen_sample_params *params,
                                          float *out, size_t out_count, edgegen_stats *stats);
/* Cancel (ABI 2), callable from any thread, including a progress callback: every edgegen_sample
   on this bundle that is running or waiting for the bundle's lock when edgegen_cancel is called
   stops with EDGEGEN_ERR_CANCELLED at its next network step (an atomic flag checked before and
   after every step). Calls that start afterwards run normally; a sample that has not yet entered
   edgegen_sample is not affected. Returns at once, without waiting for the sample to stop.
   Cancelling when nothing runs, or twice, is a no-op that returns EDGEGEN_OK.
   A freed or foreign handle gives EDGEGEN_ERR_INVALID_HANDLE. */
EDGEGEN_API edgegen_status edgegen_cancel(edgegen_bundle *bundle);

/* The bundle's decoder on codes (ABI 3; token models): codes n x image_tokens -> out, n x
   prod(sample shape) float32, in batches of batch_size (0 = 64). Serialized with edgegen_sample. */
EDGEGEN_API edgegen_status edgegen_decode(edgegen_bundle *bundle, const int64_t *codes, size_t codes_count, uint32_t n,
                                          uint32_t batch_size, float *out, size_t out_count);

/* Prompt text -> token ids (ABI 5), as Python's TextEncoder (runtimes/text.py): the bundle's tokenizer
   model (tokenizer.xml, converted at export by openvino-tokenizers) run by OpenVINO with the extension
   library libopenvino_tokenizers.so ($EDGEGEN_OV_TOKENIZERS, default: the path recorded when the library
   was built). ids receives the prompt's ids right-padded with the pad id to the text length
   (edgegen_stage_info.prompt_length; cap must be at least that), *len the number of ids before the
   padding. Bad prompts as edgegen_sample_params.prompts; a bundle without a tokenizer model is
   EDGEGEN_ERR_UNSUPPORTED. Thread-safe; it does not wait for an edgegen_sample running on the bundle. */
EDGEGEN_API edgegen_status edgegen_tokenize(edgegen_bundle *bundle, const char *text, int64_t *ids, size_t cap,
                                            size_t *len);

/* Token sampling from logits (ABI 3), exactly runtimes/tokens.py next_tokens: logits (batch,
   vocab) float32 and one uniform in (0, 1) per row -> tokens (batch). temperature 0 = greedy,
   top_k 0 = off, top_p 1 = off. For apps with their own step network, and to check the two
   languages against each other. */
EDGEGEN_API edgegen_status edgegen_next_tokens(const float *logits, uint32_t batch, size_t vocab, const double *uniforms,
                                               double temperature, int64_t top_k, double top_p, int64_t *out);

/* The portable RNG (runtimes/rng.py is the specification), for apps that need the same
   noise as Python. Philox4x32-10 of one counter under one key: */
EDGEGEN_API edgegen_status edgegen_philox4x32_10(const uint32_t counter[4], const uint32_t key[2],
                                                 uint32_t out[4]);
/* Standard normals for `batch` samples first_sample.. of `elems` values each (row-major),
   draw index `draw`, stream (0 = plan noise, 1 = GAN latents, 2 = tokens); out_count = batch * elems. */
EDGEGEN_API edgegen_status edgegen_gaussian(uint64_t seed, uint32_t first_sample, uint32_t batch, size_t elems,
                                            uint32_t draw, uint32_t stream, float *out, size_t out_count);

#ifdef __cplusplus
}
#endif
#endif /* EDGEGEN_H */
