/* A minimal HTTPS client on NSS (Mozilla's TLS), for the end-to-end tests.
 *
 * Usage: nss_client HOST PORT PATH FILE
 * Env:   BODY      the JSON request body (POSTed with an Authorization header)
 *        DELAY_MS  sleep this long first (a tracer started before hooks NSS when a process
 *                  maps it, a few ms after the exec)
 *
 * It makes one HTTP/1.1 request over TLS with the application calls NSS programs make
 * (PR_Write and PR_Send out, PR_Read and PR_Recv in), prints the status line and the body,
 * and writes FILE through NSPR (PR_Open/PR_Write/PR_Read/PR_Close) before and after the
 * request: the file's bytes must never show up in a capture (only SSL descriptors are copied).
 * The certificate is accepted without checking (a test server's self-signed one): no cert DB.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nspr.h>
#include <nss.h>
#include <ssl.h>

static SECStatus accept_any_cert(void *arg, PRFileDesc *fd, PRBool checksig, PRBool server) {
    (void)arg; (void)fd; (void)checksig; (void)server;
    return SECSuccess;
}

static int die(const char *what) {
    fprintf(stderr, "%s failed: NSPR error %d\n", what, PR_GetError());
    return 1;
}

/* Writes a marker line to FILE through NSPR and reads it back. */
static int file_roundtrip(const char *path, const char *tag) {
    char line[160], back[160];
    int n = snprintf(line, sizeof line, "NSPR-FILE-SECRET-%s this line must never be captured\n", tag);
    PRFileDesc *f = PR_Open(path, PR_WRONLY | PR_CREATE_FILE | PR_APPEND, 0600);
    if (!f) return die("PR_Open");
    if (PR_Write(f, line, n) != n) return die("PR_Write(file)");
    PR_Close(f);
    f = PR_Open(path, PR_RDONLY, 0);
    if (!f) return die("PR_Open(read)");
    if (PR_Read(f, back, sizeof back) <= 0) return die("PR_Read(file)");
    printf("file fd %p\n", (void *)f);
    PR_Close(f);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s HOST PORT PATH FILE\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argv[3], *file = argv[4];
    int port = atoi(argv[2]);
    const char *body = getenv("BODY") ? getenv("BODY") : "{}";
    if (getenv("DELAY_MS")) PR_Sleep(PR_MillisecondsToInterval(atoi(getenv("DELAY_MS"))));

    if (NSS_NoDB_Init(NULL) != SECSuccess) return die("NSS_NoDB_Init");
    if (NSS_SetDomesticPolicy() != SECSuccess) return die("NSS_SetDomesticPolicy");
    if (file_roundtrip(file, "before")) return 1;

    PRNetAddr addr;
    if (PR_StringToNetAddr(host, &addr) != PR_SUCCESS) return die("PR_StringToNetAddr");
    PR_InitializeNetAddr(PR_IpAddrNull, (PRUint16)port, &addr);
    PRFileDesc *tcp = PR_NewTCPSocket();
    if (!tcp) return die("PR_NewTCPSocket");
    PRFileDesc *fd = SSL_ImportFD(NULL, tcp);
    if (!fd) return die("SSL_ImportFD");
    SSL_OptionSet(fd, SSL_SECURITY, PR_TRUE);
    SSL_OptionSet(fd, SSL_HANDSHAKE_AS_CLIENT, PR_TRUE);
    SSL_SetURL(fd, host);
    SSL_AuthCertificateHook(fd, accept_any_cert, NULL);
    if (PR_Connect(fd, &addr, PR_SecondsToInterval(10)) != PR_SUCCESS) return die("PR_Connect");
    if (SSL_ResetHandshake(fd, PR_FALSE) != SECSuccess) return die("SSL_ResetHandshake");
    if (SSL_ForceHandshake(fd) != SECSuccess) return die("SSL_ForceHandshake");
    printf("ssl fd %p\n", (void *)fd);

    char head[1024];
    int hn = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: nss-test-client/1\r\n"
                      "Content-Type: application/json\r\nAuthorization: Bearer test-fake-key-not-real\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      path, host, port, strlen(body));
    if (PR_Write(fd, head, hn) != hn) return die("PR_Write");
    int bn = (int)strlen(body);
    if (PR_Send(fd, body, bn, 0, PR_INTERVAL_NO_TIMEOUT) != bn) return die("PR_Send");

    static char resp[1 << 20];
    int got = 0, first = 1;
    for (;;) {
        int n = first ? PR_Read(fd, resp + got, (int)sizeof resp - 1 - got)
                      : PR_Recv(fd, resp + got, (int)sizeof resp - 1 - got, 0, PR_SecondsToInterval(30));
        first = 0;
        if (n < 0) return die("PR_Recv");
        if (n == 0 || got + n >= (int)sizeof resp - 1) break;
        got += n;
    }
    resp[got] = 0;
    PR_Close(fd);

    /* After the SSL socket is closed a new file descriptor may get its address: still not
     * captured (PR_Close took it out of the set). */
    for (int i = 0; i < 3; i++)
        if (file_roundtrip(file, "after")) return 1;

    char *eol = strstr(resp, "\r\n");
    char *sep = strstr(resp, "\r\n\r\n");
    if (!eol || !sep) {
        fprintf(stderr, "no HTTP response (%d bytes)\n", got);
        return 1;
    }
    printf("%.*s\n%s\n", (int)(eol - resp), resp, sep + 4);
    NSS_Shutdown();
    return 0;
}
