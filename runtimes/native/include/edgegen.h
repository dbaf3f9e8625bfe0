/*
 * edgegen.h - the C API of the edgegen native runtime.
 *
 * Opens an exported bundle (manifest.json + the files it lists), runs the sampler
 * plans stored in it (or a plan the caller passes as JSON) on a network backend
 * (OpenVINO; TensorRT where the library was built with it), and returns samples.
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

#define EDGEGEN_ABI_VERSION 2 /* 2: progress callback + edgegen_cancel + EDGEGEN_ERR_CANCELLED */
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
} edgegen_load_params;

/* Progress callback (ABI 2): called on the sampling thread after every network step of the plan,
   counted across batches: done = 1..total, total = plan steps x number of batches (a guided step,
   one batched call on [x; x], counts once). Return 0 to go on; non-zero stops the call with
   EDGEGEN_ERR_CANCELLED. It must not call edgegen functions on the same bundle (the bundle's lock
   is held; edgegen_cancel is the exception and is safe). */
typedef int (*edgegen_progress_fn)(uint64_t done, uint64_t total, void *user);

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
/* Comma-separated keys of the plans stored in the bundle ("ddim-50,ddpm-1000"), copied into
   buf (always NUL-terminated); *needed gets the full length + 1. */
EDGEGEN_API edgegen_status edgegen_bundle_plan_keys(edgegen_bundle *bundle, char *buf, size_t buf_size,
                                                    size_t *needed);

/* How many floats edgegen_sample writes for these params (n * prod(sample shape)). */
EDGEGEN_API edgegen_status edgegen_sample_count(edgegen_bundle *bundle, const edgegen_sample_params *params,
                                                size_t *out_count);
/* Run the plan; out receives n samples (n, C, H, W) float32; out_count must equal
   edgegen_sample_count. stats may be NULL.
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
