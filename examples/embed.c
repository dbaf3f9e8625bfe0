/* Embedding edgegen in a C program: load a bundle, draw 8 samples of digit 7 with the
 * bundle's default sampler with a progress callback, print a few statistics. Links the static
 * libedgegen. (A non-zero return from the callback, or edgegen_cancel() from another thread,
 * would stop the call with EDGEGEN_ERR_CANCELLED.)
 *
 *   build/native/embed_example bundles/ddpm-small
 */
#include <stdio.h>
#include <stdlib.h>

#include "edgegen.h"

/* Called after every network step; prints a percentage at every quarter. Return 1 to cancel. */
static int on_progress(uint64_t done, uint64_t total, void *user) {
    unsigned *quarters = (unsigned *)user;
    while (*quarters < 4 && done * 4 >= (uint64_t)(*quarters + 1) * total) {
        ++*quarters;
        fprintf(stderr, "embed: %u%% (%llu/%llu steps)\n", *quarters * 25, (unsigned long long)done,
                (unsigned long long)total);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s BUNDLE\n", argv[0]);
        return 2;
    }
    edgegen_bundle *bundle = NULL;
    edgegen_status s = edgegen_bundle_load(argv[1], NULL, &bundle); /* NULL = default load params */
    if (s != EDGEGEN_OK) {
        fprintf(stderr, "embed: %s: %s\n", edgegen_status_name(s), edgegen_last_error());
        return 1;
    }
    edgegen_bundle_info info;
    edgegen_bundle_get_info(bundle, &info);

    edgegen_sample_params params;
    edgegen_sample_params_init(&params);
    params.n = 8;
    params.seed = 42;
    params.label = info.num_classes > 7 ? 7 : -1;
    unsigned quarters = 0;
    params.progress = on_progress;
    params.progress_user = &quarters;

    size_t count = 0;
    float *out = NULL;
    edgegen_stats stats;
    s = edgegen_sample_count(bundle, &params, &count);
    if (s == EDGEGEN_OK) {
        out = malloc(count * sizeof(float));
        s = out ? edgegen_sample(bundle, &params, out, count, &stats) : EDGEGEN_ERR_OUT_OF_MEMORY;
    }
    if (s != EDGEGEN_OK) {
        fprintf(stderr, "embed: %s: %s\n", edgegen_status_name(s), edgegen_last_error());
        free(out);
        edgegen_bundle_free(bundle);
        return 1;
    }
    double lo = out[0], hi = out[0], sum = 0.0;
    for (size_t i = 0; i < count; ++i) {
        lo = out[i] < lo ? out[i] : lo;
        hi = out[i] > hi ? out[i] : hi;
        sum += out[i];
    }
    printf("%s bundle: %u samples of %zu values, min %.3f max %.3f mean %.3f\n", info.family, params.n,
           count / params.n, lo, hi, sum / (double)count);
    printf("%.3f s total, %.3f s in %llu network calls\n", stats.total_seconds, stats.network_seconds,
           (unsigned long long)stats.network_calls);
    free(out);
    edgegen_bundle_free(bundle);
    return 0;
}
