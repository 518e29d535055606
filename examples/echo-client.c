/*
 * echo-client: sends each line of standard input to an echo server and
 * prints each reply.
 *
 *   echo-client HOST PORT
 *   echo-client unix:PATH       (a local socket; unix:@NAME for an abstract name)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <socknet.h>

static int fail(const char *what, int rc)
{
    fprintf(stderr, "echo-client: %s: %s\n", what, sn_strerror(rc));
    return 1;
}

int main(int argc, char **argv)
{
    bool local = argc == 2 && strncmp(argv[1], "unix:", 5) == 0;
    if (argc != 3 && !local) {
        fprintf(stderr, "usage: echo-client HOST PORT | echo-client unix:PATH\n");
        return 2;
    }
    char *end;
    long port = local ? 0 : strtol(argv[2], &end, 10);
    if (!local && (*argv[2] == '\0' || *end != '\0' || port < 1 || port > 65535)) {
        fprintf(stderr, "echo-client: bad port: %s\n", argv[2]);
        return 2;
    }

    sn_conn *c;
    int rc = sn_conn_connect(&c, argv[1], (int)port, NULL, NULL, SN_DEADLINE_DEFAULT);
    if (rc < 0)
        return fail("connect", rc);

    /* An echo returns exactly the bytes sent, so read back as many as were
     * written: this works for any line length and any bytes. */
    char *line = NULL, *reply = NULL;
    size_t cap = 0, reply_cap = 0;
    ssize_t len;
    int status = 0;
    while ((len = getline(&line, &cap, stdin)) > 0) {
        if ((size_t)len > reply_cap) {
            free(reply);
            reply_cap = cap;
            if ((reply = malloc(reply_cap)) == NULL) {
                status = fail("reply", SN_ENOMEM);
                break;
            }
        }
        if ((rc = (int)sn_write(c, line, (size_t)len, 0)) < 0 || (rc = sn_flush(c, 0)) < 0) {
            status = fail("send", rc);
            break;
        }
        if ((rc = (int)sn_read_exact(c, reply, (size_t)len, 0)) < 0) {
            status = fail("receive", rc);
            break;
        }
        fwrite(reply, 1, (size_t)len, stdout);
        fflush(stdout);
    }
    free(line);
    free(reply);
    sn_conn_free(c);
    return status;
}
