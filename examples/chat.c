/* SPDX-License-Identifier: MIT */
/*
 * chat: WebSocket chat rooms over the broadcast hub.
 *
 *   chat [--host H] [--port N] [--workers N] [--fibers on|off] [--threads N]
 *        [--writers N] [--policy drop-oldest|drop-newest|disconnect|wait]
 *        [--max-queue N] [--max-text BYTES] [--presence on|off]
 *        [--tls-cert FILE --tls-key FILE] [--redis HOST:PORT]
 *
 * GET / serves the chat page; GET /rooms lists the rooms as JSON,
 * [{"room":NAME,"members":N}] (the first 1000; the header X-Rooms-Total
 * says how many there are); a WebSocket at /chat/ROOM?name=NAME joins ROOM
 * (1-64 letters, digits, - and _) as NAME (1-32 bytes of UTF-8 without
 * control characters or bidirectional overrides; "guest" when absent). A bad room or name is closed
 * with 1008 and a reason that says which and why; a member the hub cannot
 * take (out of memory) is closed with 1011 and the reason.
 *
 * Every text message a member sends goes to every member of the room, the
 * sender included, in the order the hub accepted it, as
 * {"t":"msg","from":NAME,"text":TEXT}; joins and leaves go out as
 * {"t":"join"|"leave","name":NAME,"who":[NAMES],"count":N} (at most 50
 * names, count counts all; --presence off sends none, for benchmarks).
 *
 * What a member sends does not vanish without a word: what does not go to
 * the room is answered to its sender alone with a notice,
 * {"t":"error","code":CODE,"text":WHY}, and the session stays in the room
 * (the page shows notices in its log). CODE is
 *   too-long     a text over --max-text bytes (default 131072, 128 KiB;
 *                1-16777216);
 *   binary       a binary message (the chat is text);
 *   partly-sent  (--policy wait) some members were too slow to take the
 *                text in time; the others have it;
 *   not-sent     the hub refused the text (out of memory).
 * The session reads messages of up to 4 times --max-text (its max_message
 * and max_frame, so a text somewhat over --max-text is still read whole
 * and answered); a bigger one is not read to its end: the library closes
 * the session with 1009 (message too big). A member too slow for its room
 * misses messages as --policy says (drop-oldest by default, see
 * socknet/hub.h), and is not told.
 *
 * With --redis HOST:PORT the rooms span every chat server on that Redis
 * (socknet/hub.h, "Rooms across servers"): a text sent on any of them
 * reaches the room's members on all of them, every member in the one order
 * Redis numbered it. Two more notice codes then:
 *   not-sent     also: Redis cannot be reached (the member stays; rooms
 *                come back with Redis);
 *   maybe-sent   Redis did not answer in time, or the connection broke
 *                after the text went out: it may or may not reach the room.
 * A member that missed messages it cannot get back (Redis restarted, or
 * this server fell further behind than Redis's history) is closed with
 * 1012 or 1013; the page offers to join again. Presence ("who", "count")
 * and GET /rooms count the members on this server. Redis's address is
 * HOST:PORT, [IPV6]:PORT, or HOST (port 6379).
 *
 * With --tls-cert and --tls-key (PEM or DER) the page is served over https://
 * and the rooms over wss://. Prints "listening on H:PORT" once ready; SIGINT
 * or SIGTERM sends close 1001 to every member and exits with status 0.
 *
 * --workers is the most members at once (default 65536; 1-1048576, or
 * 1-65536 with --fibers off, the range echo-server and ws-echo take too),
 * --threads the threads that run the fibers (1-1024; default: one per
 * CPU), --writers the hub's writer threads (1-64), --max-queue the
 * messages queued per slow member (1-16777216; default 1024) and --policy
 * what happens when that queue is full (socknet/hub.h).
 * A bad flag or value is named, with what it takes, before the usage line
 * ("chat: --fibers maybe: expected on or off"); the exit status is then 2.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <socknet.h>

#define NAME_MAX_LEN 32
#define ROOM_MAX_LEN 64
#define MAX_TEXT_DEFAULT 131072 /* bytes of a text (--max-text) */
#define MAX_TEXT_MAX 16777216
#define READ_FACTOR 4 /* a session reads messages of up to 4 x --max-text */

static const char page[] =
#include "chat-page.h"
    ;

#define WHO_MAX 50 /* names listed in a presence message */
/* the longest presence message: its frame, the name and WHO_MAX names, each
 * escaped as JSON (at most 6 bytes a byte) with its quotes and comma */
#define PRESENCE_MAX (64 + (WHO_MAX + 1) * (6 * NAME_MAX_LEN + 3))
#define ROOMS_LISTED 1000 /* rooms listed by GET /rooms */

typedef struct app {
    sn_hub *hub;
    bool spans; /* --redis: rooms across servers */
    bool presence_on;
    size_t max_text; /* bytes of a text that goes to the room */
    /* one join or leave announced at a time; an sn_mutex, not a pthread
     * mutex, because its holder waits in sn_hub_publish (with --policy
     * wait) and a fiber that waits must not leave its thread blocked */
    sn_mutex *presence;
} app;

typedef struct member {
    char name[NAME_MAX_LEN + 1];
} member;

/* ---- small JSON and URL helpers ---------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            abort();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* A JSON string of UTF-8 text. */
static void put_json(buf *b, const char *s, size_t n)
{
    put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(b, esc, 6);
        } else {
            put(b, (const char *)&c, 1);
        }
    }
    put(b, "\"", 1);
}

static int hex(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Decodes %XX and '+' of a URL component [s, s + n) into out (cap bytes,
 * NUL-terminated). Returns the length, or -1 when it does not fit. */
static int url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%' && i + 2 < n && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
            c = hex(s[i + 1]) * 16 + hex(s[i + 2]);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (int)o;
}

/* Whether [s, s + n) is UTF-8: no stray or overlong sequence, no
 * surrogate, nothing past U+10FFFF (what a WebSocket text must be). */
static bool utf8_ok(const unsigned char *s, size_t n)
{
    static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000}; /* by length */
    for (size_t i = 0; i < n;) {
        size_t len = s[i] < 0x80             ? 1
                     : (s[i] & 0xe0) == 0xc0 ? 2
                     : (s[i] & 0xf0) == 0xe0 ? 3
                     : (s[i] & 0xf8) == 0xf0 ? 4
                                             : 0;
        if (len == 0 || len > n - i)
            return false;
        uint32_t cp = len == 1 ? s[i] : s[i] & (0x7fu >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3fu);
        }
        if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static bool room_ok(const char *r, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= 'A' && r[i] <= 'Z') ||
              (r[i] >= '0' && r[i] <= '9') || r[i] == '-' || r[i] == '_'))
            return false;
    return true;
}

/* A name goes into every member's text frames: UTF-8 with no control
 * characters (C0, DEL, C1: U+0080-U+009F, encoded 0xC2 0x80-0x9F) and no
 * bidirectional overrides or isolates (U+202A-U+202E, U+2066-U+2069, encoded
 * 0xE2 0x80 0xAA-0xAE and 0xE2 0x81 0xA6-0xA9), which would turn the
 * names and texts around them on every member's page. */
static bool name_ok(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        if (u[i] < 0x20 || u[i] == 0x7f)
            return false;
        if (u[i] == 0xc2 && i + 1 < n && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f)
            return false;
        if (u[i] == 0xe2 && i + 2 < n &&
            ((u[i + 1] == 0x80 && u[i + 2] >= 0xaa && u[i + 2] <= 0xae) ||
             (u[i + 1] == 0x81 && u[i + 2] >= 0xa6 && u[i + 2] <= 0xa9)))
            return false;
    }
    return n > 0 && utf8_ok(u, n);
}

/* "/chat/ROOM?name=NAME" into room and name. Returns NULL, or why not (a
 * close reason). */
static const char *parse_target(const char *target, char room[ROOM_MAX_LEN + 1],
                                char name[NAME_MAX_LEN + 1])
{
    if (strncmp(target, "/chat/", 6) != 0)
        return "no room: join /chat/ROOM?name=NAME";
    const char *r = target + 6;
    const char *q = strchr(r, '?');
    size_t rn = q ? (size_t)(q - r) : strlen(r);
    int n = url_decode(r, rn, room, ROOM_MAX_LEN + 1);
    if (n < 0 || !room_ok(room, (size_t)n))
        return "bad room: 1-64 characters, each a letter, a digit, - or _";
    strcpy(name, "guest");
    for (const char *p = q; p != NULL; p = strchr(p + 1, '&'))
        if (strncmp(p + 1, "name=", 5) == 0) {
            const char *v = p + 6, *end = strchr(v, '&');
            n = url_decode(v, end ? (size_t)(end - v) : strlen(v), name, NAME_MAX_LEN + 1);
            if (n < 0)
                return "bad name: over 32 bytes";
            if (!name_ok(name, (size_t)n))
                return "bad name: 1-32 bytes of UTF-8 text, no control characters";
        }
    return NULL;
}

/* ---- the chat ------------------------------------------------------------------ */

typedef struct who {
    buf *b;
    int n;
} who;

static void add_name(sn_ws *ws, void *user)
{
    who *w = user;
    const member *m = sn_conn_data(sn_ws_conn(ws));
    if (m == NULL || w->n++ >= WHO_MAX)
        return;
    if (w->n > 1)
        put(w->b, ",", 1);
    put_json(w->b, m->name, strlen(m->name));
}

/* Joins or leaves and tells the room, with who is there now. Returns 0, or
 * the hub's error (a join that failed is not told). */
static int presence(app *a, const char *room, sn_ws *ws, const member *m, bool join)
{
    buf b = {0};
    who w = {&b, 0};
    char count[32];
    if (!a->presence_on)
        return join ? sn_hub_join(a->hub, room, ws) : sn_hub_leave(a->hub, room, ws);
    sn_mutex_lock(a->presence);
    int rc = join ? sn_hub_join(a->hub, room, ws) : sn_hub_leave(a->hub, room, ws);
    if (rc < 0 && join) {
        sn_mutex_unlock(a->presence);
        return rc;
    }
    puts_(&b, join ? "{\"t\":\"join\",\"name\":" : "{\"t\":\"leave\",\"name\":");
    put_json(&b, m->name, strlen(m->name));
    puts_(&b, ",\"who\":[");
    sn_hub_room_sessions(a->hub, room, add_name, &w);
    snprintf(count, sizeof count, "],\"count\":%d}", w.n);
    puts_(&b, count);
    int prc = sn_hub_publish(a->hub, room, SN_WS_TEXT, b.p, b.len, NULL, SN_DEADLINE_DEFAULT);
    sn_mutex_unlock(a->presence);
    if (prc < 0)
        fprintf(stderr, "chat: room %s: %s of %s not told: %s\n", room, join ? "join" : "leave",
                m->name, sn_strerror(prc));
    free(b.p);
    return rc;
}

/* Tells the member alone why what it sent went nowhere:
 * {"t":"error","code":CODE,"text":WHY}. The session stays open. */
static void notice(sn_ws *ws, const char *code, const char *why)
{
    buf b = {0};
    puts_(&b, "{\"t\":\"error\",\"code\":");
    put_json(&b, code, strlen(code));
    puts_(&b, ",\"text\":");
    put_json(&b, why, strlen(why));
    puts_(&b, "}");
    sn_ws_send(ws, SN_WS_TEXT, b.p, b.len, sn_deadline_in(5000)); /* a failure ends the recv */
    free(b.p);
}

/* A member's message: a text goes to the room; what does not is answered. */
static void say(app *a, const char *room, sn_ws *ws, const member *m, const sn_ws_msg *msg, buf *b)
{
    char why[128];
    if (msg->type != SN_WS_TEXT) {
        notice(ws, "binary", "not sent: the chat takes text messages, not binary ones");
        return;
    }
    if (msg->len > a->max_text) {
        snprintf(why, sizeof why, "not sent: the text is %zu bytes, over the limit of %zu bytes",
                 msg->len, a->max_text);
        notice(ws, "too-long", why);
        return;
    }
    b->len = 0;
    puts_(b, "{\"t\":\"msg\",\"from\":");
    put_json(b, m->name, strlen(m->name));
    puts_(b, ",\"text\":");
    put_json(b, msg->data, msg->len);
    puts_(b, "}");
    int rc = sn_hub_publish(a->hub, room, SN_WS_TEXT, b->p, b->len, NULL, SN_DEADLINE_DEFAULT);
    if (rc == SN_ETIMEDOUT && a->spans) { /* Redis: its fate is unknown */
        notice(ws, "maybe-sent",
               "Redis did not answer in time: the text may or may not reach the room");
    } else if (rc == SN_ETIMEDOUT) { /* --policy wait: the others have it */
        notice(ws, "partly-sent", "not sent to every member: some were too slow to take it");
    } else if (rc < 0) {
        snprintf(why, sizeof why, "not sent: %s", sn_strerror(rc));
        notice(ws, "not-sent", why);
    }
}

static void chat(sn_ws *ws, void *user)
{
    app *a = user;
    char room[ROOM_MAX_LEN + 1];
    member m;
    const char *refused = parse_target(sn_ws_target(ws), room, m.name);
    if (refused != NULL) {
        sn_ws_close(ws, SN_WS_POLICY, refused, sn_deadline_in(2000));
        return;
    }
    sn_conn_set_data(sn_ws_conn(ws), &m);
    int rc = presence(a, room, ws, &m, true);
    if (rc < 0) {
        char why[124]; /* a close reason: at most 123 bytes */
        snprintf(why, sizeof why, "cannot join %s: %s", room, sn_strerror(rc));
        sn_conn_set_data(sn_ws_conn(ws), NULL);
        sn_ws_close(ws, SN_WS_INTERNAL, why, sn_deadline_in(2000));
        return;
    }
    buf b = {0};
    sn_ws_msg msg;
    while (sn_ws_recv(ws, &msg, SN_DEADLINE_NEVER) == 0)
        say(a, room, ws, &m, &msg, &b);
    free(b.p);
    presence(a, room, ws, &m, false);
    sn_conn_set_data(sn_ws_conn(ws), NULL);
}

static int index_page(sn_conn *c, const sn_http_request *req, const void *body, size_t len,
                      void *user)
{
    (void)req, (void)body, (void)len, (void)user;
    return sn_http_respond(c, 200, "Content-Type: text/html; charset=utf-8\r\n", page,
                           sizeof page - 1, false, sn_deadline_in(5000));
}

/* The rooms as [{"room":NAME,"members":N}], the first ROOMS_LISTED of
 * them; the header X-Rooms-Total says how many there are. */
static int room_list(sn_conn *c, const sn_http_request *req, const void *body, size_t len,
                     void *user)
{
    (void)req, (void)body, (void)len;
    app *a = user;
    sn_hub_room_info *info = malloc(ROOMS_LISTED * sizeof *info);
    if (info == NULL)
        return sn_http_respond(c, 503, "Retry-After: 1\r\n", NULL, 0, false, sn_deadline_in(5000));
    size_t total = sn_hub_rooms(a->hub, info, ROOMS_LISTED);
    buf b = {0};
    puts_(&b, "[");
    for (size_t i = 0; i < total && i < ROOMS_LISTED; i++) {
        char count[32];
        puts_(&b, i ? ",{\"room\":" : "{\"room\":");
        put_json(&b, info[i].name, strlen(info[i].name));
        snprintf(count, sizeof count, ",\"members\":%zu}", info[i].members);
        puts_(&b, count);
    }
    puts_(&b, "]");
    char head[128];
    snprintf(head, sizeof head,
             "Content-Type: application/json\r\nCache-Control: no-store\r\n"
             "X-Rooms-Total: %zu\r\n",
             total);
    int rc = sn_http_respond(c, 200, head, b.p, b.len, false, sn_deadline_in(5000));
    free(b.p);
    free(info);
    return rc;
}

/* ---- main ------------------------------------------------------------------------ */

#define WORKERS_MAX 1048576      /* members at once, in fiber mode */
#define THREAD_WORKERS_MAX 65536 /* with --fibers off: a thread each */

_Noreturn static void usage(void)
{
    fprintf(stderr, "usage: chat [--host H] [--port N] [--workers N] [--fibers on|off] "
                    "[--threads N] [--writers N]\n"
                    "            [--policy drop-oldest|drop-newest|disconnect|wait] "
                    "[--max-queue N] [--max-text BYTES] [--presence on|off]\n"
                    "            [--tls-cert FILE --tls-key FILE] [--redis HOST:PORT]\n");
    exit(2);
}

/* Says which flag was wrong and what it takes, then the usage line. */
_Noreturn static void bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("chat: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    usage();
}

/* The value of the flag argv[*i]; *i moves past it. */
static const char *str_arg(char **argv, int *i)
{
    if (argv[*i + 1] == NULL)
        bad("%s needs a value", argv[*i]);
    return argv[++*i];
}

/* The value of the flag argv[*i], a whole number from lo to hi. */
static long num_arg(char **argv, int *i, long lo, long hi)
{
    const char *flag = argv[*i], *s = str_arg(argv, i);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0')
        bad("%s %s: not a number (%ld-%ld)", flag, s, lo, hi);
    if (errno == ERANGE || v < lo || v > hi)
        bad("%s %s: out of range (%ld-%ld)", flag, s, lo, hi);
    return v;
}

static int on_off(char **argv, int *i)
{
    const char *flag = argv[*i], *s = str_arg(argv, i);
    if (strcmp(s, "on") == 0)
        return SN_ON;
    if (strcmp(s, "off") == 0)
        return SN_OFF;
    bad("%s %s: expected on or off", flag, s);
}

/* --redis HOST:PORT, [IPV6]:PORT or HOST, into host (cap bytes) and port. */
static void redis_arg(char **argv, int *i, char *host, size_t cap, uint16_t *port)
{
    const char *flag = argv[*i], *s = str_arg(argv, i);
    const char *colon = strrchr(s, ':'), *end = s + strlen(s);
    if (s[0] == '[') { /* [::1]:6379 */
        const char *close = strchr(s, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            bad("%s %s: expected HOST:PORT, [IPV6]:PORT or HOST", flag, s);
        colon = close[1] == ':' ? close + 1 : NULL;
        end = close;
        s++;
    } else if (colon != NULL && strchr(s, ':') != colon) {
        colon = NULL; /* a bare IPv6 address */
    } else if (colon != NULL) {
        end = colon;
    }
    *port = 6379;
    if (colon != NULL) {
        char *e;
        long v = strtol(colon + 1, &e, 10);
        if (colon[1] == '\0' || *e != '\0' || v < 1 || v > 65535)
            bad("%s %s: the port is not a number from 1 to 65535", flag, argv[*i]);
        *port = (uint16_t)v;
    }
    if (end == s || (size_t)(end - s) >= cap)
        bad("%s %s: expected HOST:PORT, [IPV6]:PORT or HOST", flag, argv[*i]);
    memcpy(host, s, (size_t)(end - s));
    host[end - s] = '\0';
}

static int policy_arg(char **argv, int *i)
{
    static const char *const names[] = {"drop-oldest", "drop-newest", "disconnect", "wait"};
    const char *flag = argv[*i], *s = str_arg(argv, i);
    for (int p = 0; p < 4; p++)
        if (strcmp(s, names[p]) == 0)
            return p; /* SN_HUB_DROP_OLDEST ... SN_HUB_WAIT */
    bad("%s %s: expected drop-oldest, drop-newest, disconnect or wait", flag, s);
}

/* Waits up to 2 s for Redis, and says on stderr why it is not there yet
 * (the server runs all the same: rooms answer not-sent until it is). */
static void redis_wait(sn_hub *hub, const char *host, uint16_t port)
{
    sn_hub_engine_stats st;
    for (int i = 0; i < 200; i++) {
        sn_hub_engine_stats_get(hub, &st);
        if (st.up)
            return;
        sn_sleep_ms(10);
    }
    fprintf(stderr, "chat: Redis at %s:%u cannot be reached yet (%s); trying again meanwhile\n",
            host, (unsigned)port, st.error != 0 ? sn_strerror(st.error) : "no answer");
}

int main(int argc, char **argv)
{
    sn_server_config cfg = {
        .host = "127.0.0.1",
        .handler = sn_web_serve,
        .workers = 65536,
        .fibers = SN_ON,
        .conn = {.read_buffer = 1024}, /* grows for a bigger head or frame */
    };
    sn_hub_config hc = {0};
    const char *cert = NULL, *key = NULL;
    char redis_host[256] = "";
    uint16_t redis_port = 0;
    app a = {.presence_on = true, .max_text = MAX_TEXT_DEFAULT};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--host") == 0)
            cfg.host = str_arg(argv, &i);
        else if (strcmp(f, "--port") == 0)
            cfg.port = (int)num_arg(argv, &i, 0, 65535);
        else if (strcmp(f, "--workers") == 0)
            cfg.workers = (int)num_arg(argv, &i, 1, WORKERS_MAX);
        else if (strcmp(f, "--fibers") == 0)
            cfg.fibers = on_off(argv, &i);
        else if (strcmp(f, "--threads") == 0)
            cfg.fiber_threads = (int)num_arg(argv, &i, 1, 1024);
        else if (strcmp(f, "--writers") == 0)
            hc.writers = (int)num_arg(argv, &i, 1, 64);
        else if (strcmp(f, "--policy") == 0)
            hc.room.policy = policy_arg(argv, &i);
        else if (strcmp(f, "--max-queue") == 0)
            hc.room.max_queue = (size_t)num_arg(argv, &i, 1, 1L << 24);
        else if (strcmp(f, "--max-text") == 0)
            a.max_text = (size_t)num_arg(argv, &i, 1, MAX_TEXT_MAX);
        else if (strcmp(f, "--presence") == 0)
            a.presence_on = on_off(argv, &i) == SN_ON;
        else if (strcmp(f, "--tls-cert") == 0)
            cert = str_arg(argv, &i);
        else if (strcmp(f, "--tls-key") == 0)
            key = str_arg(argv, &i);
        else if (strcmp(f, "--redis") == 0)
            redis_arg(argv, &i, redis_host, sizeof redis_host, &redis_port);
        else
            bad("unknown flag %s", f);
    }
    if (cfg.fibers == SN_OFF && cfg.workers > THREAD_WORKERS_MAX)
        bad("--workers %d: out of range with --fibers off (1-%d)", cfg.workers, THREAD_WORKERS_MAX);
    if ((cert == NULL) != (key == NULL))
        bad("--tls-cert and --tls-key go together");

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    int mrc = sn_mutex_new(&a.presence);
    if (mrc < 0) {
        fprintf(stderr, "chat: %s\n", sn_strerror(mrc));
        return 1;
    }
    /* A text over --max-text is still read whole, to be answered; a message
     * over READ_FACTOR times --max-text gets the library's close 1009. The
     * hub takes any text up to --max-text, escaped as JSON (at most 6 bytes
     * a byte) with its sender's name. */
    sn_ws_config wc = {.max_message = READ_FACTOR * a.max_text,
                       .max_frame = READ_FACTOR * a.max_text,
                       .ping_period_ms = 30000};
    hc.max_message = 6 * (a.max_text + NAME_MAX_LEN) + 64;
    if (hc.max_message < PRESENCE_MAX)
        hc.max_message = PRESENCE_MAX; /* a join or leave with WHO_MAX names */
    sn_web *web = NULL;
    sn_server *srv = NULL;
    sn_tls *tls = NULL;
    sn_tls_config tc = {.role = SN_TLS_SERVER,
                        .cert = {.chain = {.file = cert}, .key = {.file = key}}};
    char why[SN_TLS_REASON_MAX]; /* why a TLS configuration is refused */
    tc.reason = why;
    tc.reason_cap = sizeof why;
    int rc = cert != NULL ? sn_tls_new(&tls, &tc) : 0; /* https:// and wss:// */
    if (rc < 0) {
        fprintf(stderr, "chat: TLS configuration: %s: %s\n", sn_strerror(rc), why);
        return 1;
    }
    cfg.tls = tls; /* the server keeps its own reference */
    if (rc == 0 && redis_host[0] != '\0') {
        sn_hub_redis_config rcfg = {.host = redis_host, .port = redis_port};
        rc = sn_hub_redis_new(&hc.engine, &rcfg);
        a.spans = rc == 0;
    }
    if (rc == 0 && (rc = sn_hub_new(&a.hub, &hc)) < 0)
        sn_hub_engine_free(hc.engine); /* still ours */
    if (rc == 0)
        rc = sn_web_new(&web, NULL);
    if (rc == 0)
        rc = sn_web_route_ws(web, "/chat", SN_ROUTE_PREFIX, &wc, chat, &a);
    if (rc == 0)
        rc = sn_web_route_http(web, "/", SN_ROUTE_EXACT, index_page, &a);
    if (rc == 0)
        rc = sn_web_route_http(web, "/rooms", SN_ROUTE_EXACT, room_list, &a);
    cfg.user = web;
    if (rc == 0)
        rc = sn_server_new(&srv, &cfg);
    if (rc == 0)
        rc = sn_server_start(srv);
    if (rc < 0) {
        fprintf(stderr, "chat: %s\n", sn_strerror(rc));
        return 1;
    }
    if (a.spans) /* it connects in the background: say so if it cannot yet */
        redis_wait(a.hub, redis_host, redis_port);
    sn_addr local;
    char text[SN_ADDR_STRLEN];
    sn_server_local_addr(srv, 0, &local);
    sn_addr_format(&local, text, sizeof text);
    printf("listening on %s\n", text);
    fflush(stdout);

    int sig;
    sigwait(&stop, &sig);
    sn_server_stop(srv, 2000); /* every member gets close 1001 */
    sn_server_free(srv);
    sn_web_free(web);
    sn_hub_free(a.hub);
    sn_tls_free(tls);
    sn_mutex_free(a.presence);
    return 0;
}
