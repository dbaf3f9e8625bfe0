/* A C program that generates from a prompt with a progress bar and stops cleanly on Ctrl-C.
 *
 *   build/native/prompt_example BUNDLE "PROMPT" [N]
 *   build/native/prompt_example bundles/ldm-small "a photo of a coat" 4
 *   build/native/prompt_example BUNDLE --tokens TOKENS [N]
 *   build/native/prompt_example bundles/ldm-small --tokens "$(edgegen tokenize bundles/ldm-small 'a photo of a coat')" 4
 *
 * The prompt text is tokenized by the library (ABI 5: the bundle's tokenizer model, the same ids as
 * Python's; edgegen_tokenize shows them); --tokens takes the ids instead, comma-separated (`edgegen
 * tokenize BUNDLE "text"` prints them). Both give the same samples. Ctrl-C (SIGINT) sets a flag that the
 * progress callback turns into a non-zero return, so the call stops after the current network
 * step with EDGEGEN_ERR_CANCELLED, writes no result, and the bundle stays usable (the program
 * then checks that by asking for the stored plan list). Exit status: 0 done, 130 cancelled,
 * 1 an error from the library, 2 bad arguments.
 *
 * EDGEGEN_EXAMPLE_INTERRUPT_AT=K raises SIGINT from inside the callback at step K: the same
 * signal path as a real Ctrl-C, at a known moment (the tests use it).
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgegen.h"

static volatile sig_atomic_t interrupted = 0;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

struct progress {
    uint64_t interrupt_at; /* 0: never */
    uint64_t last_done;
};

/* After every network step: draw the bar; a non-zero return cancels the call. */
static int on_progress(uint64_t done, uint64_t total, void *user) {
    struct progress *p = (struct progress *)user;
    p->last_done = done;
    if (p->interrupt_at && done == p->interrupt_at) raise(SIGINT);
    const int width = 30;
    int filled = total ? (int)(done * (uint64_t)width / total) : width;
    fprintf(stderr, "\r[%.*s%*s] %llu/%llu steps", filled, "##############################", width - filled, "",
            (unsigned long long)done, (unsigned long long)total);
    if (done == total) fputc('\n', stderr);
    return interrupted ? 1 : 0;
}

/* "5,17,3" -> ids; returns the count, 0 on a malformed list. */
static size_t parse_ids(const char *text, int64_t *ids, size_t cap) {
    size_t n = 0;
    const char *s = text;
    while (*s) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || v < 0 || n == cap) return 0;
        ids[n++] = (int64_t)v;
        if (*end == ',') ++end;
        else if (*end) return 0;
        s = end;
    }
    return n;
}

int main(int argc, char **argv) {
    const int tokens = argc >= 3 && strcmp(argv[2], "--tokens") == 0; /* ids instead of text */
    const int first = tokens ? 4 : 3;                                /* argv index of N */
    if (argc < first || argc > first + 1) {
        fprintf(stderr, "usage: %s BUNDLE \"PROMPT\" [N]   or   %s BUNDLE --tokens ID,ID,... [N]\n", argv[0], argv[0]);
        return 2;
    }
    int64_t ids[256];
    size_t len = 0;
    if (tokens && (len = parse_ids(argv[3], ids, sizeof ids / sizeof ids[0])) == 0) {
        fprintf(stderr, "prompt_example: --tokens must be comma-separated token ids, e.g. 5,17,3 (got '%s')\n", argv[3]);
        return 2;
    }
    const char *text[1] = {argv[2]};
    long n = argc == first + 1 ? strtol(argv[first], NULL, 10) : 4;
    if (n < 1 || n > 1024) {
        fprintf(stderr, "prompt_example: N must be 1..1024, got '%s'\n", argv[first]);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);

    edgegen_bundle *bundle = NULL;
    edgegen_status s = edgegen_bundle_load(argv[1], NULL, &bundle);
    if (s != EDGEGEN_OK) {
        fprintf(stderr, "prompt_example: %s: %s\n", edgegen_status_name(s), edgegen_last_error());
        return 1;
    }
    if (!tokens) { /* the ids the library tokenizes the prompt to (edgegen_tokenize), shown */
        size_t used = 0;
        s = edgegen_tokenize(bundle, text[0], ids, sizeof ids / sizeof ids[0], &used);
        if (s != EDGEGEN_OK) {
            fprintf(stderr, "prompt_example: %s: %s\n", edgegen_status_name(s), edgegen_last_error());
            edgegen_bundle_free(bundle);
            return 1;
        }
        fprintf(stderr, "prompt ids:");
        for (size_t i = 0; i < used; ++i) fprintf(stderr, "%s%lld", i ? "," : " ", (long long)ids[i]);
        fputc('\n', stderr);
    }
    struct progress prog = {0, 0};
    const char *at = getenv("EDGEGEN_EXAMPLE_INTERRUPT_AT");
    if (at) prog.interrupt_at = strtoull(at, NULL, 10);

    edgegen_sample_params params;
    edgegen_sample_params_init(&params);
    params.n = (uint32_t)n;
    params.seed = 0;
    if (tokens) {
        params.prompt_tokens = ids;
        params.prompt_len = len;
    } else {
        params.prompts = text; /* tokenized by the library */
    }
    params.prompt_count = 1;
    params.progress = on_progress;
    params.progress_user = &prog;

    size_t count = 0;
    float *out = NULL;
    edgegen_stats stats;
    s = edgegen_sample_count(bundle, &params, &count);
    if (s == EDGEGEN_OK) {
        out = malloc(count * sizeof(float));
        s = out ? edgegen_sample(bundle, &params, out, count, &stats) : EDGEGEN_ERR_OUT_OF_MEMORY;
    }
    int rc = 0;
    if (s == EDGEGEN_ERR_CANCELLED) {
        fprintf(stderr, "\nprompt_example: cancelled after step %llu (%s)\n", (unsigned long long)prog.last_done,
                edgegen_last_error());
        /* the bundle stays usable after a cancel */
        char keys[4096];
        size_t need = 0;
        edgegen_status again = edgegen_bundle_plan_keys(bundle, keys, sizeof keys, &need);
        fprintf(stderr, "prompt_example: bundle still usable: %s\n", again == EDGEGEN_OK ? "yes" : "no");
        rc = 130;
    } else if (s != EDGEGEN_OK) {
        fprintf(stderr, "prompt_example: %s: %s\n", edgegen_status_name(s), edgegen_last_error());
        rc = 1;
    } else {
        double lo = out[0], hi = out[0], sum = 0;
        for (size_t i = 0; i < count; ++i) {
            lo = out[i] < lo ? out[i] : lo;
            hi = out[i] > hi ? out[i] : hi;
            sum += out[i];
        }
        printf("%ld samples of %zu values, min %.3f max %.3f sum %.6f, %.3f s (%llu network calls)\n", n,
               count / (size_t)n, lo, hi, sum, stats.total_seconds, (unsigned long long)stats.network_calls);
    }
    free(out);
    edgegen_bundle_free(bundle);
    return rc;
}
