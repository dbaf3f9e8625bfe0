/* The smallest app on an installed edgegen (examples/consumer): load a bundle, draw 2 samples
 * with a progress callback, print one line. Built against the installed tree, either
 *
 *   cmake -S examples/consumer -B build/consumer -DCMAKE_PREFIX_PATH=P && cmake --build build/consumer
 *   cc examples/consumer/consumer.c $(PKG_CONFIG_PATH=P/lib/pkgconfig pkg-config --cflags --libs edgegen)
 *
 * (tests/native/test_native_install.py does both). Usage: consumer BUNDLE */
#include <stdio.h>
#include <stdlib.h>

#include <edgegen.h>

static int count_steps(uint64_t done, uint64_t total, void *user) {
    (void)total;
    *(uint64_t *)user = done;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s BUNDLE\n", argv[0]);
        return 2;
    }
    if (edgegen_abi_version() != EDGEGEN_ABI_VERSION) {
        fprintf(stderr, "consumer: header ABI %d, library ABI %d\n", EDGEGEN_ABI_VERSION, edgegen_abi_version());
        return 1;
    }
    edgegen_bundle *b = NULL;
    edgegen_status s = edgegen_bundle_load(argv[1], NULL, &b);
    edgegen_sample_params p;
    edgegen_sample_params_init(&p);
    p.n = 2;
    uint64_t steps = 0;
    p.progress = count_steps;
    p.progress_user = &steps;
    size_t count = 0;
    float *out = NULL;
    if (s == EDGEGEN_OK) s = edgegen_sample_count(b, &p, &count);
    if (s == EDGEGEN_OK) {
        out = malloc(count * sizeof(float));
        s = out ? edgegen_sample(b, &p, out, count, NULL) : EDGEGEN_ERR_OUT_OF_MEMORY;
    }
    if (s != EDGEGEN_OK) {
        fprintf(stderr, "consumer: %s: %s\n", edgegen_status_name(s), edgegen_last_error());
        free(out);
        edgegen_bundle_free(b);
        return 1;
    }
    printf("edgegen %s: %zu values, %llu steps, first %.4f\n", edgegen_version(), count,
           (unsigned long long)steps, out[0]);
    free(out);
    edgegen_bundle_free(b);
    return 0;
}
