/*
 * Store-and-forward with real nodes on loopback: mail for an offline
 * recipient waits in mailboxes (the nodes closest to its mailbox id) and
 * reaches it when it comes back, while the sender is offline; a mailbox
 * killed halfway loses nothing; what mailboxes hold is ciphertext only
 * (canary); a fetch without the account key gets nothing; quota and TTL.
 *
 * Nodes: 0 bootstraps, 1..3 are candidate mailboxes, 4 is A (sender), 5 is
 * B (recipient). MERPATI_TEST_FILTER=name runs one test.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <uv.h>

#include <cmocka.h>

#include "crypto/address.h"
#include "crypto/box.h"
#include "crypto/envelope.h"
#include "crypto/identity.h"
#include "crypto/noise.h"
#include "crypto/prekey.h"
#include "crypto/secure.h"
#include "node/link.h"
#include "node/msg.h"
#include "node/sessions.h"
#include "node/store.h"
#include "node/sysenv.h"
#include "tests/node/node_util.h"

#define WAIT_MS 60000
#define NODES 6
enum { A = 4, B = 5 };

static struct node nodes[NODES];
static char config_path[96];
static char bootstrap[160];

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void write_config(const char *mailbox_extra)
{
    snprintf(config_path, sizeof(config_path), "/tmp/mp-mbox-%ld.conf", (long)getpid());
    FILE *f = fopen(config_path, "w");
    assert_non_null(f);
    fprintf(f, "dht_ip_limit = 0;\ndht_rate_limit = 0;\nmailbox = { fetch_interval = 2; %s };\n",
            mailbox_extra);
    fclose(f);
}

static void start_node(struct node *n)
{
    node_start(n, ARGS("--config", config_path, "--bootstrap", bootstrap));
}

static void start_all(const char *mailbox_extra)
{
    write_config(mailbox_extra);
    for (int i = 0; i < NODES; i++)
        node_init(&nodes[i]);
    node_start(&nodes[0], ARGS("--config", config_path));
    node_bootstrap_entry(&nodes[0], bootstrap, sizeof(bootstrap));
    for (int i = 1; i < NODES; i++)
        start_node(&nodes[i]);
}

static int teardown(void **state)
{
    harness_kill_all(state);
    if (getenv("MERPATI_TEST_KEEP") != NULL)
        return 0;
    for (int i = 0; i < NODES; i++)
        node_cleanup(&nodes[i]);
    unlink(config_path);
    return 0;
}

static void add_contact(struct node *n, struct node *other, const char *name)
{
    struct run_result r = harness_run(NULL, ARGS("contacts", "add", other->address, "--name", name,
                                                 "--data-dir", n->dir, "--config", config_path));
    assert_int_equal(r.status, 0);
    harness_result_free(&r);
}

/* Until via finds owner's presence and prekey records in the DHT: then
 * owner may stop, and mail for it can still be sealed and left with its
 * mailboxes (a fixed wait was too short for a loaded machine). */
static void wait_records(struct node *via, struct node *owner)
{
    static const char *const kinds[] = {"presence", "prekeys"};
    for (size_t k = 0; k < 2; k++) {
        char params[200];
        snprintf(params, sizeof(params), "{\"kind\":\"%s\",\"owner\":\"%s\"}", kinds[k],
                 owner->address);
        bool found = false;
        for (int waited = 0; waited < WAIT_MS && !found; waited += 200) {
            json_t *reply = node_call(via, "dht.get", params);
            found = json_object_get(reply, "result") != NULL;
            json_decref(reply);
            if (!found)
                sleep_ms(200);
        }
        if (!found)
            fail_msg("%s's %s record not found from %s in time", owner->dir, kinds[k], via->dir);
    }
}

/* All nodes up, A and B each other's contacts, then B stopped once A finds
 * its records: what A sends goes to B's mailboxes. */
static void start_with_b_away(void)
{
    start_all("");
    add_contact(&nodes[A], &nodes[B], "bob");
    add_contact(&nodes[B], &nodes[A], "alice");
    wait_records(&nodes[A], &nodes[B]);
    sleep_ms(1500); /* and stored on others than B, which it may have been alone to hold */
    node_stop(&nodes[B]);
}

/* The states of n's messages to `with`, counted: {"mailbox": 3, ...}. */
static int count_state(struct node *n, struct node *with, const char *state)
{
    char params[200];
    snprintf(params, sizeof(params), "{\"with\":\"%s\",\"limit\":1000}", with->address);
    json_t *h = node_call(n, "history", params);
    json_t *list = json_object_get(json_object_get(h, "result"), "messages");
    int count = 0;
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m)
    {
        json_t *s = json_object_get(m, "state");
        count += s != NULL && strcmp(json_string_value(s), state) == 0;
    }
    json_decref(h);
    return count;
}

static void wait_state(struct node *n, struct node *with, const char *state, int count)
{
    int have = 0;
    for (int waited = 0; waited < WAIT_MS; waited += 200) {
        if ((have = count_state(n, with, state)) >= count)
            return;
        sleep_ms(200);
    }
    fail_msg("%d of %d messages reached \"%s\" in time", have, count, state);
}

/* Pipeline count sends of "<prefix>NNNN" on one connection; all must succeed. */
/* Texts prefix + %04d number, then pad dots: two messages of half a bundle
 * (BIG) do not fit one, so they go one per envelope and a test counts
 * envelopes where mailboxes count them. */
#define BIG (MSG_WIRE_MAX / 2)
static void send_padded(struct node *from, struct node *to, const char *prefix, int first,
                        int count, size_t pad)
{
    int fd = harness_connect(from->sock);
    assert_true(fd >= 0);
    size_t cap = 512 + pad;
    char *line = malloc(cap), *dots = malloc(pad + 1);
    assert_non_null(line);
    assert_non_null(dots);
    memset(dots, '.', pad);
    dots[pad] = '\0';
    for (int i = first; i < first + count; i++) {
        int len = snprintf(line, cap,
                           "{\"jsonrpc\":\"2.0\",\"method\":\"send\",\"params\":{\"to\":\"%s\","
                           "\"text\":\"%s%04d%s\"},\"id\":%d}\n",
                           to->address, prefix, i, dots, i);
        assert_int_equal(send(fd, line, (size_t)len, MSG_NOSIGNAL), len);
    }
    free(line);
    free(dots);
    for (int i = 0; i < count; i++) {
        char *reply = harness_exchange(fd, "", 0);
        assert_non_null(reply);
        json_t *j = json_loads(reply, 0, NULL);
        if (json_object_get(j, "result") == NULL)
            fail_msg("send failed: %s", reply);
        json_decref(j);
        free(reply);
    }
    close(fd);
}

static void send_many(struct node *from, struct node *to, const char *prefix, int first, int count)
{
    send_padded(from, to, prefix, first, count, 0);
}

/* Wait for count messages in n's inbox, then check each of 0..count-1 is
 * there exactly once and in order. */
static void expect_in_order(struct node *n, const char *prefix, int count)
{
    json_t *list = NULL;
    for (int waited = 0; waited < WAIT_MS; waited += 200) {
        json_decref(list);
        list = node_inbox_all(n, 1000);
        if (json_array_size(list) >= (size_t)count)
            break;
        sleep_ms(200);
    }
    sleep_ms(500); /* anything else in flight lands: a duplicate would show */
    json_decref(list);
    list = node_inbox_all(n, 1000);
    if (json_array_size(list) < (size_t)count)
        fail_msg("%zu of %d messages arrived", json_array_size(list), count);
    int next = 0;
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m)
    {
        const char *text = json_string_value(json_object_get(m, "text"));
        assert_non_null(text);
        assert_int_equal(strncmp(text, prefix, strlen(prefix)), 0);
        int k = (int)strtol(text + strlen(prefix), NULL, 10);
        if (k != next)
            fail_msg("message %d arrived where %d was due (duplicate or out of order)", k, next);
        next++;
    }
    assert_int_equal(next, count);
    json_decref(list);
}

/* The nodes A would leave B's mail with: indexes into nodes[]. */
static int mailboxes_of(struct node *from, struct node *to, int out[3])
{
    char params[200];
    snprintf(params, sizeof(params), "{\"who\":\"%s\"}", to->address);
    int n = 0;
    for (int waited = 0; waited < WAIT_MS && n == 0; waited += 500) {
        json_t *reply = node_call(from, "mailbox.where", params);
        json_t *list = json_object_get(json_object_get(reply, "result"), "mailboxes");
        size_t i;
        json_t *m;
        json_array_foreach(list, i, m)
        {
            const char *key = json_string_value(json_object_get(m, "node_key"));
            for (int k = 0; k < NODES && n < 3; k++) {
                if (nodes[k].pid <= 0)
                    continue;
                json_t *s = status_json(&nodes[k]);
                const char *nk =
                    json_string_value(json_object_get(json_object_get(s, "dht"), "node_key"));
                if (nk != NULL && strcmp(nk, key) == 0)
                    out[n++] = k;
                json_decref(s);
            }
        }
        json_decref(reply);
        if (n == 0)
            sleep_ms(500);
    }
    return n;
}

/* B stopped; A sends 1,000; A stops too; B starts and gets all of them
 * while A is offline; A comes back and sees every one delivered. */
static void test_offline_both_ways(void **state)
{
    (void)state;
    enum { TOTAL = 1000 };
    struct node *a = &nodes[A], *b = &nodes[B];
    start_with_b_away();

    send_many(a, b, "m", 0, TOTAL);
    wait_state(a, b, "mailbox", TOTAL);
    node_stop(a);

    start_node(b);
    expect_in_order(b, "m", TOTAL);

    start_node(a);
    wait_state(a, b, "delivered", TOTAL);
    json_t *s = status_json(b);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "messages"),
                                                        "undecryptable")),
                     0);
    json_decref(s);
}

/* The same with one of B's three mailboxes killed (-9) halfway. */
static void test_mailbox_killed_halfway(void **state)
{
    (void)state;
    enum { TOTAL = 400 };
    struct node *a = &nodes[A], *b = &nodes[B];
    start_with_b_away();

    int boxes[3];
    assert_int_equal(mailboxes_of(a, b, boxes), 3);
    send_many(a, b, "k", 0, TOTAL / 2);
    wait_state(a, b, "mailbox", TOTAL / 2);
    struct node *victim = &nodes[boxes[0]];
    kill(victim->pid, SIGKILL);
    assert_int_equal(harness_wait(victim->pid, STOP_TIMEOUT_MS), 128 + SIGKILL);
    victim->pid = 0;
    send_many(a, b, "k", TOTAL / 2, TOTAL / 2);
    wait_state(a, b, "mailbox", TOTAL);
    node_stop(a);

    start_node(b);
    expect_in_order(b, "k", TOTAL);
}

/* ---- canary: no byte of the message outside the two ends ---- */

/* Every frame on the loopback interface while the test runs (needs root;
 * the capture is skipped with a message otherwise). */
struct capture {
    int fd;
    pthread_t thread;
    volatile int stop;
    uint8_t *data;
    size_t len, cap;
};

static void *capture_main(void *arg)
{
    struct capture *c = arg;
    uint8_t frame[65536 + 256];
    while (!c->stop) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = recv(c->fd, frame, sizeof(frame), 0);
        if (n <= 0 || c->len + (size_t)n > c->cap)
            continue; /* bounded: a capture past the cap stops growing */
        memcpy(c->data + c->len, frame, (size_t)n);
        c->len += (size_t)n;
    }
    return NULL;
}

static bool capture_start(struct capture *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (c->fd < 0)
        return false;
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                              .sll_ifindex = (int)if_nametoindex("lo")};
    c->cap = 256u * 1024 * 1024;
    c->data = malloc(c->cap);
    if (c->data == NULL || bind(c->fd, (struct sockaddr *)&sll, sizeof(sll)) != 0 ||
        pthread_create(&c->thread, NULL, capture_main, c) != 0) {
        close(c->fd);
        free(c->data);
        return false;
    }
    return true;
}

static void capture_stop(struct capture *c)
{
    c->stop = 1;
    pthread_join(c->thread, NULL);
    close(c->fd);
}

static bool contains(const uint8_t *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n <= len && i <= len - n; i++) {
        if (hay[i] == (uint8_t)needle[0] && memcmp(hay + i, needle, n) == 0)
            return true;
    }
    return false;
}

/* Fails the test if any file under path (recursively) holds needle. */
static void assert_tree_lacks(const char *path, const char *needle)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *dir = opendir(path);
        assert_non_null(dir);
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[512];
            snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
            assert_tree_lacks(sub, needle);
        }
        closedir(dir);
        return;
    }
    if (!S_ISREG(st.st_mode))
        return;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    uint8_t *data = malloc((size_t)st.st_size + 1);
    assert_non_null(data);
    ssize_t n = read(fd, data, (size_t)st.st_size);
    close(fd);
    if (n > 0 && contains(data, (size_t)n, needle))
        fail_msg("the canary is in %s", path);
    free(data);
}

/* Fails if the running process's writable memory holds needle; false when
 * its memory cannot be read (not root, or ptrace is restricted). */
static bool assert_memory_lacks(pid_t pid, const char *needle)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    FILE *maps = fopen(path, "r");
    snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
    int mem = open(path, O_RDONLY);
    bool read_any = false;
    char line[512];
    while (maps != NULL && mem >= 0 && fgets(line, sizeof(line), maps) != NULL) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[0] != 'r' ||
            perms[1] != 'w' || hi - lo > 1024ul * 1024 * 1024)
            continue;
        size_t len = hi - lo;
        uint8_t *buf = malloc(len);
        assert_non_null(buf);
        ssize_t n = pread(mem, buf, len, (off_t)lo);
        if (n > 0) {
            read_any = true;
            if (contains(buf, (size_t)n, needle))
                fail_msg("the canary is in the memory of pid %d (%s)", (int)pid, line);
        }
        free(buf);
    }
    if (maps != NULL)
        fclose(maps);
    if (mem >= 0)
        close(mem);
    return read_any;
}

static void test_canary_only_at_the_ends(void **state)
{
    (void)state;
    uint8_t raw[16];
    char canary[64], hexs[33], text[128];
    secure_init();
    secure_random(raw, sizeof(raw));
    secure_hex(hexs, sizeof(hexs), raw, sizeof(raw));
    snprintf(canary, sizeof(canary), "CANARY%s", hexs);
    snprintf(text, sizeof(text), "the word is %s, keep it", canary);

    struct node *a = &nodes[A], *b = &nodes[B];
    start_with_b_away();
    struct capture cap;
    bool capturing = capture_start(&cap);
    if (!capturing)
        print_message("loopback capture skipped: needs root (AF_PACKET)\n");

    struct run_result r = harness_run(NULL, ARGS("send", "--data-dir", a->dir, "--config",
                                                 config_path, "bob", text));
    assert_int_equal(r.status, 0);
    harness_result_free(&r);
    wait_state(a, b, "mailbox", 1);
    node_stop(a);
    start_node(b);
    json_t *list = NULL;
    for (int waited = 0; waited < WAIT_MS; waited += 200) {
        json_decref(list);
        list = node_inbox_all(b, 1000);
        if (json_array_size(list) >= 1)
            break;
        sleep_ms(200);
    }
    /* The canary made it, so its absence below means something. */
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "text")), text);
    json_decref(list);

    if (capturing) {
        capture_stop(&cap);
        assert_true(cap.len > 0);
        if (contains(cap.data, cap.len, canary))
            fail_msg("the canary crossed the loopback interface in clear");
        print_message("captured %zu bytes of loopback traffic: no canary\n", cap.len);
        free(cap.data);
    }
    bool memory_read = true;
    for (int i = 0; i < NODES; i++) {
        if (i != A && i != B) { /* DHT nodes and mailboxes: nothing of it */
            assert_tree_lacks(nodes[i].dir, canary);
            memory_read = assert_memory_lacks(nodes[i].pid, canary) && memory_read;
        }
        assert_tree_lacks(nodes[i].log, canary); /* and no log, the ends' included */
    }
    if (!memory_read)
        print_message("process memory check skipped: /proc/PID/mem not readable\n");
}

/* ---- forged fetches ---- */

/* A node of our own, in this process, speaking the link protocol. */
struct rogue {
    uv_loop_t loop;
    struct env env;
    struct links *links;
    struct identity *account, *node; /* its own */
    uint8_t node_sk[32], node_pk[32];
    int challenges, mails, ends, acks, delivereds;
    uint8_t nonce[MSG_MB_NONCE_BYTES];
    uint8_t end_status;
};

static void rogue_message_cb(void *arg, const uint8_t peer[LINK_KEY_BYTES], const uint8_t *msg,
                             size_t len)
{
    struct rogue *r = arg;
    struct msg_link l;
    (void)peer;
    if (msg_link_decode(msg, len, &l) != MP_OK)
        return;
    if (l.type == MSG_LINK_MB_CHALLENGE) {
        memcpy(r->nonce, l.nonce, sizeof(r->nonce));
        r->challenges++;
    } else if (l.type == MSG_LINK_MB_MAIL) {
        r->mails++;
    } else if (l.type == MSG_LINK_MB_END) {
        r->end_status = l.status;
        r->ends++;
    } else if (l.type == MSG_LINK_ACK) {
        r->acks++;
    } else if (l.type == MSG_LINK_DELIVERED) {
        r->delivereds++;
    }
    msg_link_clear(&l);
}

static void rogue_state_cb(void *arg, const uint8_t peer[LINK_KEY_BYTES], bool up)
{
    (void)arg;
    (void)peer;
    (void)up;
}

static void rogue_writable_cb(void *arg, const uint8_t peer[LINK_KEY_BYTES])
{
    (void)arg;
    (void)peer;
}

static void rogue_send(struct rogue *r, const uint8_t peer[32], const struct addr *addr,
                       const struct msg_link *l)
{
    struct buf wire;
    assert_int_equal(msg_link_encode(l, &wire), MP_OK);
    assert_int_equal(links_send(r->links, peer, addr, wire.data, wire.len), MP_OK);
    buf_free(&wire);
}

/* Run the loop until *counter reaches want (or 15 s pass). */
static void rogue_wait(struct rogue *r, const int *counter, int want)
{
    for (int i = 0; i < 1500 && *counter < want; i++) {
        uv_run(&r->loop, UV_RUN_NOWAIT);
        sleep_ms(10);
    }
    assert_int_equal(*counter, want);
}

static void sign_fetch(const struct identity *id, const uint8_t mailbox_node[32],
                       const uint8_t fetcher_node[32], const uint8_t nonce[32],
                       struct msg_link *out)
{
    static const char label[] = "merpati mailbox fetch v1";
    uint8_t msg[sizeof(label) - 1 + 96];
    memcpy(msg, label, sizeof(label) - 1);
    memcpy(msg + sizeof(label) - 1, mailbox_node, 32);
    memcpy(msg + sizeof(label) - 1 + 32, fetcher_node, 32);
    memcpy(msg + sizeof(label) - 1 + 64, nonce, 32);
    identity_sign(id, msg, sizeof(msg), out->sig);
}

static void closed_cb(void *arg)
{
    (void)arg;
}

/* The rogue up: a fresh account and node key, links on the public network. */
static void rogue_init(struct rogue *r)
{
    static const uint8_t network_id[] = "public";
    memset(r, 0, sizeof(*r));
    assert_int_equal(uv_loop_init(&r->loop), 0);
    assert_int_equal(sysenv_init(&r->env), MP_OK);
    assert_int_equal(identity_generate(&r->env, &r->account), MP_OK);
    assert_int_equal(identity_generate(&r->env, &r->node), MP_OK);
    assert_int_equal(identity_x25519(r->node, r->node_sk, r->node_pk), MP_OK);
    struct links_config lc = {.env = &r->env, .static_secret = r->node_sk,
                              .static_public = r->node_pk, .version = NOISE_PROTOCOL_VERSION,
                              .network_id = network_id, .network_id_len = sizeof(network_id) - 1,
                              .message_cb = rogue_message_cb, .link_state_cb = rogue_state_cb,
                              .writable_cb = rogue_writable_cb, .arg = r};
    assert_int_equal(links_new(&r->loop, &lc, &r->links), MP_OK);
}

static void rogue_close(struct rogue *r)
{
    links_close(r->links, closed_cb, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    secure_wipe(r->node_sk, sizeof(r->node_sk));
    identity_free(r->account);
    identity_free(r->node);
}

/* A node's key and address, from its bootstrap entry (key hex @ address). */
static void node_entry(struct node *n, uint8_t key_out[32], struct addr *addr_out)
{
    char entry[160];
    node_bootstrap_entry(n, entry, sizeof(entry));
    for (int i = 0; i < 32; i++)
        assert_int_equal(sscanf(entry + 2 * i, "%2hhx", &key_out[i]), 1);
    assert_int_equal(addr_parse(strchr(entry, '@') + 1, addr_out), MP_OK);
}

/* What a sender needs to send to node b: its account, its node's key and
 * address, and its prekey bundle, found as any sender finds it (in the DHT,
 * asked through via). */
struct target {
    uint8_t account[32], node[32];
    struct addr addr;
    struct prekey_bundle bundle;
};

static void target_of(struct node *via, struct node *b, struct target *t)
{
    assert_int_equal(address_decode(b->address, t->account), MP_OK);
    node_entry(b, t->node, &t->addr);
    char params[200];
    snprintf(params, sizeof(params), "{\"kind\":\"prekeys\",\"owner\":\"%s\"}", b->address);
    const char *hex = NULL;
    json_t *reply = NULL;
    for (int waited = 0; waited < WAIT_MS && hex == NULL; waited += 500) {
        json_decref(reply);
        reply = node_call(via, "dht.get", params);
        hex = json_string_value(json_object_get(json_object_get(reply, "result"), "payload"));
        if (hex == NULL)
            sleep_ms(500);
    }
    assert_non_null(hex);
    size_t payload_len = strlen(hex) / 2;
    uint8_t *payload = malloc(payload_len);
    assert_non_null(payload);
    assert_int_equal(secure_unhex(payload, payload_len, hex, strlen(hex)), MP_OK);
    assert_int_equal(prekey_bundle_decode(payload, payload_len, &t->bundle), MP_OK);
    free(payload);
    json_decref(reply);
}

/* The rogue's end-to-end sessions, in a scratch store of its own. */
struct rogue_sessions {
    char dir[64];
    struct store *store;
    struct sessions *sessions;
};

static void rogue_sessions_open(struct rogue *r, struct rogue_sessions *rs)
{
    pid_t holder = 0;
    harness_tempdir(rs->dir, sizeof(rs->dir));
    assert_int_equal(store_open(rs->dir, &rs->store, &holder), MP_OK);
    assert_int_equal(sessions_new(&r->env, rs->store, r->account, sysenv_unix_ms(), &rs->sessions),
                     MP_OK);
}

static void rogue_sessions_close(struct rogue_sessions *rs)
{
    sessions_free(rs->sessions);
    store_close(rs->store);
    harness_rmtree(rs->dir);
}

/* pt sealed to t's account into envelope_out. */
static void seal_to(struct rogue_sessions *rs, const struct target *t, const struct buf *pt,
                    struct buf *envelope_out)
{
    struct store_batch *batch = store_batch_new();
    assert_int_equal(sessions_seal(rs->sessions, t->account, &t->bundle, sysenv_unix_ms(),
                                   pt->data, pt->len, batch, envelope_out),
                     MP_OK);
    /* Kept, so the next seal continues the ratchet. */
    assert_int_equal(store_batch_write(rs->store, batch, false), MP_OK);
    store_batch_free(batch);
}

static void test_forged_fetch_refused(void **state)
{
    (void)state;
    struct node *a = &nodes[A], *b = &nodes[B];
    start_with_b_away();
    send_many(a, b, "f", 0, 5);
    wait_state(a, b, "mailbox", 5);
    int boxes[3];
    assert_true(mailboxes_of(a, b, boxes) >= 1);
    struct node *m = &nodes[boxes[0]];
    uint8_t m_key[32];
    struct addr m_addr;
    node_entry(m, m_key, &m_addr);

    /* The rogue: its own account X and node key, B's address known to all. */
    struct rogue r;
    rogue_init(&r);
    const struct identity *x = r.account;
    uint8_t b_key[32];
    assert_int_equal(address_decode(b->address, b_key), MP_OK);
    struct msg_link hello = {.type = MSG_LINK_MB_HELLO}, fetch = {.type = MSG_LINK_MB_FETCH};
    buf_init(&hello.envelope, 0);
    buf_init(&fetch.envelope, 0);

    /* 1. Claim B's mailbox with X's signature: refused, nothing handed out. */
    rogue_send(&r, m_key, &m_addr, &hello);
    rogue_wait(&r, &r.challenges, 1);
    memcpy(fetch.account, b_key, 32);
    sign_fetch(x, m_key, r.node_pk, r.nonce, &fetch);
    rogue_send(&r, m_key, &m_addr, &fetch);
    rogue_wait(&r, &r.ends, 1);
    assert_int_equal(r.end_status, MSG_MB_END_REFUSED);

    /* 2. X's own mailbox, properly: served, and empty: B's mail is not X's. */
    rogue_send(&r, m_key, &m_addr, &hello);
    rogue_wait(&r, &r.challenges, 2);
    memcpy(fetch.account, identity_public_key(x), 32);
    sign_fetch(x, m_key, r.node_pk, r.nonce, &fetch);
    rogue_send(&r, m_key, &m_addr, &fetch);
    rogue_wait(&r, &r.ends, 2);
    assert_int_equal(r.end_status, MSG_MB_END_DONE);

    /* 3. The same fetch again: its challenge was used up. */
    rogue_send(&r, m_key, &m_addr, &fetch);
    rogue_wait(&r, &r.ends, 3);
    assert_int_equal(r.end_status, MSG_MB_END_REFUSED);
    assert_int_equal(r.mails, 0);

    rogue_close(&r);
    json_t *ms = status_json(m);
    assert_true(json_integer_value(json_object_get(json_object_get(ms, "mailbox"),
                                                   "refused_proof")) >= 2);
    json_decref(ms);

    /* The mail was there all along, for B. */
    start_node(b);
    expect_in_order(b, "f", 5);
}

/* ---- a bundle with a message that does not decode ---- */

/* One text for the rogue to send: counter and text, a random id. */
static void rogue_text(struct rogue *r, uint64_t counter, const char *text, struct buf *pt_out)
{
    struct msg m = {.kind = MSG_KIND_TEXT, .counter = counter, .sent_at_ms = sysenv_unix_ms(),
                    .text = (char *)text, .text_len = strlen(text)};
    env_random(&r->env, m.id, MSG_ID_BYTES);
    assert_int_equal(msg_encode(&m, pt_out), MP_OK);
}

/* A sender (the rogue, a stranger to B) seals a bundle of three messages to
 * B, the middle one not a message at all: B takes the other two, in order,
 * counts the bad one, and acks the envelope, so a sender is never stuck
 * resending it. */
static void test_bundle_with_a_bad_message(void **state)
{
    (void)state;
    start_all("");
    struct node *b = &nodes[B];
    struct target t;
    target_of(&nodes[A], b, &t);

    /* Two texts around a part of a newer version ([9, 9, 9]). */
    struct rogue r;
    rogue_init(&r);
    struct buf pts[2], pt, envelope;
    static const uint8_t newer[] = {0x93, 0x09, 0x09, 0x09};
    const char *texts[2] = {"before the bad one", "after the bad one"};
    struct msg_part parts[3];
    for (int i = 0; i < 2; i++)
        rogue_text(&r, (uint64_t)i + 1, texts[i], &pts[i]);
    parts[0] = (struct msg_part){pts[0].data, pts[0].len};
    parts[1] = (struct msg_part){newer, sizeof(newer)};
    parts[2] = (struct msg_part){pts[1].data, pts[1].len};
    assert_int_equal(msg_bundle_encode(parts, 3, &pt), MP_OK);

    struct rogue_sessions rs;
    rogue_sessions_open(&r, &rs);
    seal_to(&rs, &t, &pt, &envelope);
    struct msg_link l = {.type = MSG_LINK_ENVELOPE, .envelope = envelope};
    rogue_send(&r, t.node, &t.addr, &l);
    rogue_wait(&r, &r.acks, 1); /* taken and acked */
    rogue_close(&r);

    /* The two texts wait among B's requests (the rogue is no contact), in order. */
    json_t *list = NULL, *reply = NULL;
    for (int waited = 0; waited < WAIT_MS; waited += 200) {
        json_decref(list);
        reply = node_call(b, "inbox.list", "{\"requests\":true}");
        list = json_incref(json_object_get(json_object_get(reply, "result"), "messages"));
        json_decref(reply);
        if (json_array_size(list) >= 2)
            break;
        sleep_ms(200);
    }
    assert_int_equal(json_array_size(list), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *m = json_array_get(list, i);
        assert_string_equal(json_string_value(json_object_get(m, "text")), texts[i]);
    }
    json_decref(list);
    json_t *st = status_json(b);
    assert_true(json_integer_value(json_object_get(json_object_get(st, "messages"),
                                                   "undecryptable")) >= 1);
    json_decref(st);

    rogue_sessions_close(&rs);
    buf_free(&envelope);
    buf_free(&pt);
    for (int i = 0; i < 2; i++)
        buf_free(&pts[i]);
}

/* ---- acks that are receipts ---- */

/* The rogue, now B's contact, sends as a node before type 11 would (no
 * hello): B acks with 2 and owes receipts. After its hello B answers a
 * whole envelope with 11, the receipt itself, but a bundle with a part it
 * cannot decode again with 2. */
static void test_delivered_ack_only_when_said(void **state)
{
    (void)state;
    start_all("");
    struct node *b = &nodes[B];
    struct target t;
    target_of(&nodes[A], b, &t);

    struct rogue r;
    rogue_init(&r);
    struct rogue_sessions rs;
    rogue_sessions_open(&r, &rs);
    char r_address[ADDRESS_TEXT_SIZE];
    address_encode(identity_public_key(r.account), r_address);
    struct run_result run = harness_run(NULL, ARGS("contacts", "add", r_address, "--data-dir",
                                                   b->dir, "--config", config_path));
    assert_int_equal(run.status, 0);
    harness_result_free(&run);

    struct buf pt, envelope;
    rogue_text(&r, 1, "no hello yet", &pt);
    seal_to(&rs, &t, &pt, &envelope);
    struct msg_link l = {.type = MSG_LINK_ENVELOPE, .envelope = envelope};
    rogue_send(&r, t.node, &t.addr, &l);
    rogue_wait(&r, &r.acks, 1);
    assert_int_equal(r.delivereds, 0);
    buf_free(&pt);
    buf_free(&envelope);

    struct msg_link hello = {.type = MSG_LINK_HELLO, .features = MSG_FEATURE_DELIVERED};
    buf_init(&hello.envelope, 0);
    rogue_send(&r, t.node, &t.addr, &hello);
    rogue_text(&r, 2, "after the hello", &pt);
    seal_to(&rs, &t, &pt, &envelope);
    l.envelope = envelope;
    rogue_send(&r, t.node, &t.addr, &l);
    rogue_wait(&r, &r.delivereds, 1);
    /* Again, as if that ack was lost: a plain ack now (B also queues an
     * envelope receipt to the rogue, which may not have heard: not checked
     * here, the rogue publishes no presence to receive it). */
    rogue_send(&r, t.node, &t.addr, &l);
    rogue_wait(&r, &r.acks, 2);
    assert_int_equal(r.delivereds, 1);
    buf_free(&pt);
    buf_free(&envelope);

    struct buf text;
    static const uint8_t newer[] = {0x93, 0x09, 0x09, 0x09};
    rogue_text(&r, 3, "beside a bad one", &text);
    struct msg_part parts[2] = {{text.data, text.len}, {newer, sizeof(newer)}};
    assert_int_equal(msg_bundle_encode(parts, 2, &pt), MP_OK);
    seal_to(&rs, &t, &pt, &envelope);
    l.envelope = envelope;
    rogue_send(&r, t.node, &t.addr, &l);
    rogue_wait(&r, &r.acks, 3);
    assert_int_equal(r.delivereds, 1);
    rogue_close(&r);

    /* All three texts are in B's inbox, once each. */
    json_t *reply = node_call(b, "inbox.list", "{}");
    json_t *list = json_object_get(json_object_get(reply, "result"), "messages");
    assert_int_equal(json_array_size(list), 3);
    json_decref(reply);

    rogue_sessions_close(&rs);
    buf_free(&envelope);
    buf_free(&pt);
    buf_free(&text);
}

/* The digest of the one envelope the stopped node n sent (its outbox's
 * digest index, PROTOCOL "Store layout"). */
static void only_digest(struct node *n, uint8_t digest_out[32])
{
    struct store *st = NULL;
    pid_t holder = 0;
    const uint8_t prefix = 'd', *key, *val;
    size_t key_len, val_len, rows = 0;
    assert_int_equal(store_open(n->dir, &st, &holder), MP_OK);
    struct store_iter *it = store_iter_new(st, STORE_CF_OUTBOX_INDEX, &prefix, 1);
    while (store_iter_next(it, &key, &key_len, &val, &val_len)) {
        assert_int_equal(key_len, 33);
        memcpy(digest_out, key + 1, 32);
        rows++;
    }
    store_iter_free(it);
    store_close(st);
    assert_int_equal(rows, 1);
}

/* A's text to B waits in B's mailboxes. The rogue knows its envelope's
 * digest (as a mailbox would) and claims it delivered: with a "delivered"
 * ack (not from B's node) and an envelope receipt (not from B). A believes
 * neither; a plain ack, which any node that holds the envelope may send,
 * moves it to "sent", which shows both were read before it. B's own
 * receipt, when B is back, delivers it. */
static void test_delivered_only_from_the_recipient(void **state)
{
    (void)state;
    struct node *a = &nodes[A], *b = &nodes[B];
    start_with_b_away();
    send_many(a, b, "claimed ", 0, 1);
    wait_state(a, b, "mailbox", 1);
    node_stop(a);
    uint8_t digest[32];
    only_digest(a, digest);
    start_node(a);
    struct target t;
    target_of(&nodes[0], a, &t);

    struct rogue r;
    rogue_init(&r);
    struct msg_link claim = {.type = MSG_LINK_DELIVERED};
    memcpy(claim.digest, digest, 32);
    buf_init(&claim.envelope, 0);
    rogue_send(&r, t.node, &t.addr, &claim);

    struct rogue_sessions rs;
    rogue_sessions_open(&r, &rs);
    struct msg m = {.kind = MSG_KIND_ENVELOPE_RECEIPT, .sent_at_ms = sysenv_unix_ms()};
    env_random(&r.env, m.id, MSG_ID_BYTES);
    memcpy(m.digest, digest, 32);
    struct buf pt, envelope;
    assert_int_equal(msg_encode(&m, &pt), MP_OK);
    seal_to(&rs, &t, &pt, &envelope);
    struct msg_link l = {.type = MSG_LINK_ENVELOPE, .envelope = envelope};
    rogue_send(&r, t.node, &t.addr, &l);
    rogue_wait(&r, &r.acks, 1); /* taken (as a stranger's), and read */

    claim.type = MSG_LINK_ACK;
    rogue_send(&r, t.node, &t.addr, &claim);
    wait_state(a, b, "sent", 1);
    assert_int_equal(count_state(a, b, "delivered"), 0);
    rogue_close(&r);

    start_node(b);
    wait_state(a, b, "delivered", 1);
    rogue_sessions_close(&rs);
    buf_free(&envelope);
    buf_free(&pt);
}

/* ---- quota and TTL ---- */

static long long sum_mailbox(const char *field)
{
    long long sum = 0;
    for (int i = 0; i < NODES; i++) {
        if (i == A || i == B || nodes[i].pid <= 0)
            continue;
        json_t *s = status_json(&nodes[i]);
        sum += (long long)json_integer_value(json_object_get(json_object_get(s, "mailbox"), field));
        json_decref(s);
    }
    return sum;
}

static void test_quota_and_ttl(void **state)
{
    (void)state;
    enum { TOTAL = 8, QUOTA = 5 };
    start_all("max_count = 5; ttl = 4;");
    struct node *a = &nodes[A], *b = &nodes[B];
    add_contact(a, b, "bob");
    wait_records(a, b);
    sleep_ms(1500); /* and stored on others than b */
    node_stop(b);
    send_padded(a, b, "q", 0, TOTAL, BIG);
    /* Each mailbox takes five; the rest is refused as full, and A says so. */
    wait_state(a, b, "mailbox", QUOTA);
    json_t *s = status_json(a);
    long long full = (long long)json_integer_value(
        json_object_get(json_object_get(json_object_get(s, "messages"), "to_mailboxes"), "full"));
    json_decref(s);
    assert_true(full > 0);
    assert_true(sum_mailbox("refused_full") > 0);
    /* Four seconds on, the mailboxes drop them and A marks them expired:
     * the first five, then the other three once stored after the room freed. */
    wait_state(a, b, "expired", TOTAL);
    for (int waited = 0; waited < WAIT_MS && sum_mailbox("held") > 0; waited += 200)
        sleep_ms(200);
    assert_int_equal(sum_mailbox("held"), 0);
    assert_true(sum_mailbox("expired") >= QUOTA);
    /* B comes back to nothing: expired mail is gone. */
    start_node(b);
    json_int_t done = 0;
    for (int waited = 0; waited < WAIT_MS && done < 3; waited += 200) {
        json_t *bs = status_json(b);
        done = json_integer_value(json_object_get(json_object_get(bs, "mailbox"), "fetches_done"));
        json_decref(bs);
        if (done < 3)
            sleep_ms(200);
    }
    assert_true(done >= 3); /* it asked its mailboxes, and they had nothing */
    json_t *list = node_inbox_all(b, 1000);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
}

/* ---- handoff ---- */

/* New nodes join closer to B's mailbox id: the nodes that hold B's mail hand
 * it on, so the three closest running nodes hold it, and B gets it from them
 * with every node that held it before stopped. */
static void test_handoff_to_new_closest(void **state)
{
    (void)state;
    enum { TOTAL = 20, FIRST = 4, ALL = 10 };
    static struct node more[ALL - FIRST];
    start_all("handoff_interval = 2;");
    struct node *a = &nodes[A], *b = &nodes[B];
    add_contact(a, b, "bob");
    add_contact(b, a, "alice");
    wait_records(a, b);
    sleep_ms(1500); /* and stored on others than b */
    node_stop(b);
    send_padded(a, b, "h", 0, TOTAL, BIG);
    wait_state(a, b, "mailbox", TOTAL);
    node_stop(a);

    /* Six more nodes join; with ten candidates the closest three likely change. */
    struct node *all[ALL];
    for (int i = 0; i < FIRST; i++)
        all[i] = &nodes[i];
    for (int i = 0; i < ALL - FIRST; i++) {
        node_init(&more[i]);
        start_node(&more[i]);
        all[FIRST + i] = &more[i];
    }
    uint8_t b_key[32], mbid[32], ids[ALL][32];
    assert_int_equal(address_decode(b->address, b_key), MP_OK);
    envelope_mailbox_id(b_key, mbid);
    int order[ALL];
    for (int i = 0; i < ALL; i++) {
        uint8_t key[32];
        struct addr unused;
        node_entry(all[i], key, &unused);
        box_node_id(key, ids[i]);
        for (int k = 0; k < 32; k++)
            ids[i][k] ^= mbid[k]; /* the XOR distance to the mailbox id */
        order[i] = i;
    }
    for (int i = 1; i < ALL; i++) { /* nearest first */
        for (int k = i; k > 0 && memcmp(ids[order[k]], ids[order[k - 1]], 32) < 0; k--) {
            int t = order[k];
            order[k] = order[k - 1];
            order[k - 1] = t;
        }
    }
    int changed = 0;
    for (int i = 0; i < 3; i++)
        changed += order[i] >= FIRST;
    print_message("%d of the 3 closest nodes joined after the mail was stored\n", changed);
    /* The three closest hold all of it, within a few handoff rounds. */
    for (int i = 0; i < 3; i++) {
        json_int_t held = 0;
        for (int waited = 0; waited < WAIT_MS && held < TOTAL; waited += 250) {
            json_t *s = status_json(all[order[i]]);
            held = json_integer_value(json_object_get(json_object_get(s, "mailbox"), "held"));
            json_decref(s);
            if (held < TOTAL)
                sleep_ms(250);
        }
        if (held < TOTAL)
            fail_msg("the %d. closest node holds %lld of %d", i + 1, (long long)held, TOTAL);
    }
    /* Every other node stops: B gets its mail from the three closest alone
     * (it joins through the closest: every node it knew is gone). */
    for (int i = 3; i < ALL; i++)
        node_stop(all[order[i]]);
    char entry[160];
    node_bootstrap_entry(all[order[0]], entry, sizeof(entry));
    node_start(b, ARGS("--config", config_path, "--bootstrap", entry));
    expect_in_order(b, "h", TOTAL);
    for (int i = 0; i < ALL - FIRST; i++)
        node_cleanup(&more[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_offline_both_ways, teardown),
        cmocka_unit_test_teardown(test_mailbox_killed_halfway, teardown),
        cmocka_unit_test_teardown(test_canary_only_at_the_ends, teardown),
        cmocka_unit_test_teardown(test_forged_fetch_refused, teardown),
        cmocka_unit_test_teardown(test_bundle_with_a_bad_message, teardown),
        cmocka_unit_test_teardown(test_delivered_ack_only_when_said, teardown),
        cmocka_unit_test_teardown(test_delivered_only_from_the_recipient, teardown),
        cmocka_unit_test_teardown(test_quota_and_ttl, teardown),
        cmocka_unit_test_teardown(test_handoff_to_new_closest, teardown),
    };
    const char *filter = getenv("MERPATI_TEST_FILTER");
    if (filter != NULL)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
