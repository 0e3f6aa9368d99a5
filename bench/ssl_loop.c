/* ssl_loop: the cost of one SSL_write_ex / SSL_read_ex call, in a tight loop, for `cargo xtask bench`.
 *
 * A client and a server SSL object talk over an in-memory BIO pair (no sockets, no syscalls): the
 * handshake runs once, then each iteration the client writes one N-byte record, the server reads it,
 * the server writes one N-byte record back, the client reads it. Only the two client calls are timed
 * (clock_gettime around each), so what is measured is the client's SSL_write_ex + SSL_read_ex and
 * whatever probes sit on them. Which libssl is used (traced, empty-probed, untraced copy) is chosen
 * by the caller with LD_LIBRARY_PATH.
 *
 * Modes:
 *   llm    the client's first bytes are an OpenAI chat request head, the server answers an SSE stream
 *          head, and every record after that is SSE events: a long LLM-shaped stream.
 *   muted  the client makes one non-LLM request (GET /blob), reads the head of a huge response,
 *          waits for the agent to mute that response, then only reads (server writes, client
 *          reads): the cost of a read on a muted response (only reads are timed; a client write
 *          would end the mute, by design).
 *
 * Prints one JSON line: ns per timed call, and the time of a fixed CPU-bound loop run before and
 * after (the caller normalises by it: the VM's clock speed drifts).
 *
 * usage: ssl_loop ITERATIONS BYTES llm|muted [MUTE_WAIT_MS]
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "ssl_loop: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* A fixed amount of CPU work: its time tracks the VM's current speed. */
static volatile uint64_t sink;
static uint64_t probe_loop_ns(void) {
    uint64_t t0 = now_ns(), x = 88172645463325252ull;
    for (int i = 0; i < 2000000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    sink = x;
    return now_ns() - t0;
}

/* A throwaway self-signed P-256 certificate, made in memory. */
static void make_cert(EVP_PKEY **key_out, X509 **cert_out) {
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    if (!key || !cert) die("key/cert");
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME *name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"bench.local", -1, -1, 0);
    X509_set_issuer_name(cert, name);
    if (!X509_sign(cert, key, EVP_sha256())) die("sign");
    *key_out = key;
    *cert_out = cert;
}

/* Moves `n` bytes from `from` to `to` (a write on one side, reads on the other until all arrived). */
static void xfer(SSL *from, SSL *to, const char *buf, size_t n, char *rbuf, uint64_t *timed_write,
                 uint64_t *timed_read, int time_write) {
    size_t done = 0;
    uint64_t t0 = now_ns();
    if (SSL_write_ex(from, buf, n, &done) != 1 || done != n) die("SSL_write_ex");
    uint64_t t1 = now_ns();
    if (time_write) *timed_write = t1 - t0;
    size_t got = 0;
    while (got < n) {
        size_t r = 0;
        t0 = now_ns();
        if (SSL_read_ex(to, rbuf + got, n - got, &r) != 1) die("SSL_read_ex");
        t1 = now_ns();
        if (!time_write) *timed_read = t1 - t0;
        got += r;
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts in place; the value at quantile q. */
static double quantile(uint64_t *v, long n, double q) {
    qsort(v, (size_t)n, sizeof *v, cmp_u64);
    long i = (long)(q * (double)(n - 1));
    return (double)v[i];
}

/* N bytes of SSE events, padded with an SSE comment line to exactly n. */
static void sse_payload(char *buf, size_t n) {
    static const char ev[] =
        "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\","
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"word \"},\"finish_reason\":null}]}\n\n";
    size_t len = sizeof(ev) - 1, off = 0;
    while (off + len + 4 <= n) {
        memcpy(buf + off, ev, len);
        off += len;
    }
    if (off < n) {
        memset(buf + off, 'x', n - off);
        buf[off] = ':';
        if (n - off >= 2) buf[n - 2] = '\n';
        buf[n - 1] = '\n';
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: ssl_loop ITERATIONS BYTES llm|muted [MUTE_WAIT_MS]\n");
        return 2;
    }
    long iters = atol(argv[1]);
    size_t n = (size_t)atol(argv[2]);
    int muted = strcmp(argv[3], "muted") == 0;
    long wait_ms = argc > 4 ? atol(argv[4]) : 500;
    if (iters <= 0 || n == 0 || n > 16384) die("ITERATIONS > 0 and 0 < BYTES <= 16384 (one TLS record)");

    EVP_PKEY *key;
    X509 *cert;
    make_cert(&key, &cert);
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    if (!sctx || !cctx) die("SSL_CTX_new");
    if (SSL_CTX_use_certificate(sctx, cert) != 1 || SSL_CTX_use_PrivateKey(sctx, key) != 1) die("cert");
    SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
    BIO *cb, *sb;
    if (!BIO_new_bio_pair(&cb, 1 << 17, &sb, 1 << 17)) die("BIO pair");
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    for (int i = 0; i < 100 && !(SSL_is_init_finished(c) && SSL_is_init_finished(s)); i++) {
        SSL_do_handshake(c);
        SSL_do_handshake(s);
    }
    if (!SSL_is_init_finished(c) || !SSL_is_init_finished(s)) die("handshake");

    char *wbuf = malloc(n), *rbuf = malloc(n + 1);
    uint64_t tw = 0, tr = 0;
    char head[512];
    if (muted) {
        const char *req = "GET /blob HTTP/1.1\r\nHost: internal.bench.local\r\n\r\n";
        const char *resp = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                           "Content-Length: 1000000000000\r\n\r\n";
        xfer(c, s, req, strlen(req), rbuf, &tw, &tr, 1);
        xfer(s, c, resp, strlen(resp), rbuf, &tw, &tr, 0);
        /* Give the agent time to see the request and mute the connection. */
        struct timespec w = {wait_ms / 1000, (wait_ms % 1000) * 1000000};
        nanosleep(&w, NULL);
        memset(wbuf, 'z', n);
    } else {
        int h = snprintf(head, sizeof head,
                         "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
                         "Content-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n"
                         "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[");
        xfer(c, s, head, (size_t)h, rbuf, &tw, &tr, 1);
        h = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     "Content-Length: 1000000000000\r\n\r\n");
        xfer(s, c, head, (size_t)h, rbuf, &tw, &tr, 0);
        memset(wbuf, ' ', n);
    }
    char *sse = malloc(n);
    sse_payload(sse, n);

    long warm = iters / 10 + 10;
    for (long i = 0; i < warm; i++) {
        if (!muted) xfer(c, s, wbuf, n, rbuf, &tw, &tr, 1);
        xfer(s, c, sse, n, rbuf, &tw, &tr, 0);
    }
    /* Per-call times: the median ignores the calls during which the thread was preempted. */
    uint64_t *w = calloc((size_t)iters, sizeof *w), *r = calloc((size_t)iters, sizeof *r);
    uint64_t p0 = probe_loop_ns();
    for (long i = 0; i < iters; i++) {
        if (!muted) xfer(c, s, wbuf, n, rbuf, &w[i], &tr, 1);
        xfer(s, c, sse, n, rbuf, &tw, &r[i], 0);
    }
    /* Let the agent digest the records first: the loop would otherwise compete with it. */
    struct timespec pause = {0, 200 * 1000000};
    nanosleep(&pause, NULL);
    uint64_t p1 = probe_loop_ns();
    double wm = quantile(w, iters, 0.5), rm = quantile(r, iters, 0.5);
    /* Muted: reads only (the write times are all zero). */
    if (muted) wm = rm;
    printf("{\"ns_per_call\": %.1f, \"write_ns\": %.1f, \"read_ns\": %.1f, \"write_p99_ns\": %.1f, "
           "\"read_p99_ns\": %.1f, \"probe_ns\": %.1f, \"calls\": %ld}\n",
           (wm + rm) / 2.0, wm, rm, quantile(w, iters, 0.99), quantile(r, iters, 0.99), (p0 + p1) / 2.0,
           2 * iters);
    return 0;
}
