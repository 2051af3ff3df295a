/*
 * Private clusters with real `merpati run` processes on loopback, driven by
 * the CLI as a user would: three nodes form a cluster from one join token
 * while each also stays on its own public network (two routing tables); an
 * outsider whose token has the right name and address but another secret
 * gets no peer and learns no member, and the members count its datagrams as
 * auth drops; the outsider's stale bootstrap entries give the warning in
 * `status`; `bootstrap add|rm` changes the public list live; a restarted
 * member rejoins on the same port; a member that leaves stops that network
 * and does not rejoin at restart. A node on both networks records which
 * network reaches each contact, and a contact pinned to a network is looked
 * up only there.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cmocka.h>

#include "tests/node/node_util.h"

#define MEMBERS 3
/* How long a cluster of three may take to form, in 200 ms steps. */
#define FORM_TIMEOUT_MS 20000
/* The overlay warns after OVERLAY_BOOTSTRAP_WARN_MS (10 s) without peers. */
#define WARN_TIMEOUT_MS 20000

static struct node members[MEMBERS];
static struct node outsider;
static struct node solo[3]; /* fresh nodes for the cluster_only test */
static struct node across[3]; /* and for the test across networks */

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* `merpati <args> --data-dir n->dir`; fails the test on a non-zero exit. */
static struct run_result cli_ok(struct node *n, const char *const *args)
{
    const char *full[32];
    size_t k = 0;
    for (; args[k] != NULL && k < 28; k++)
        full[k] = args[k];
    full[k++] = "--data-dir";
    full[k++] = n->dir;
    full[k] = NULL;
    struct run_result r = harness_run(NULL, full);
    if (r.status != 0)
        fail_msg("merpati %s %s: exit %d\n%s%s", args[0], args[1] != NULL ? args[1] : "", r.status,
                 r.out, r.err);
    return r;
}

/* The network named name in n's status (a new reference), or NULL. */
static json_t *network_of(struct node *n, const char *name)
{
    json_t *s = status_json(n);
    size_t i;
    json_t *net, *found = NULL;
    json_array_foreach(json_object_get(s, "networks"), i, net)
    {
        if (strcmp(json_string_value(json_object_get(net, "name")), name) == 0)
            found = json_incref(net);
    }
    json_decref(s);
    return found;
}

static long table_of(struct node *n, const char *name)
{
    json_t *net = network_of(n, name);
    long size = net != NULL ? (long)json_integer_value(json_object_get(net, "table_size")) : -1;
    json_decref(net);
    return size;
}

static long auth_drops_of(struct node *n, const char *name)
{
    json_t *net = network_of(n, name);
    assert_non_null(net);
    long drops = (long)json_integer_value(
        json_object_get(json_object_get(json_object_get(net, "dht"), "dropped"), "auth"));
    json_decref(net);
    return drops;
}

static long link_drop_of(struct node *n, const char *name, const char *reason)
{
    json_t *net = network_of(n, name);
    assert_non_null(net);
    long v = (long)json_integer_value(json_object_get(json_object_get(net, "dropped"), reason));
    json_decref(net);
    return v;
}

/* Connect to 127.0.0.1:port, send len bytes and read until the peer closes
 * (at most 10 s); returns the number of bytes the peer sent back. */
static long probe(int port, const uint8_t *data, size_t len)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 10};
    uint8_t buf[256];
    long got = 0;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            assert_int_equal(n, 0); /* closed by the member, not timed out */
            break;
        }
        got += n;
    }
    close(fd);
    return got;
}

static void wait_table(struct node *n, const char *name, long min)
{
    for (int waited = 0; waited < FORM_TIMEOUT_MS; waited += 200) {
        if (table_of(n, name) >= min)
            return;
        sleep_ms(200);
    }
    fail_msg("%s: network %s has %ld peers, not %ld, after %d ms", n->dir, name, table_of(n, name),
             min, FORM_TIMEOUT_MS);
}

/* The "<node key>@127.0.0.1:<port>" entry of n's network name. */
static void entry_of(struct node *n, const char *name, char *out, size_t size)
{
    json_t *net = network_of(n, name);
    assert_non_null(net);
    snprintf(out, size, "%s",
             json_string_value(json_object_get(json_object_get(net, "dht"), "bootstrap")));
    json_decref(net);
}

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < MEMBERS; i++)
        node_init(&members[i]);
    node_init(&outsider);
    return 0;
}

static int teardown(void **state)
{
    harness_kill_all(state);
    for (int i = 0; i < MEMBERS; i++)
        node_cleanup(&members[i]);
    node_cleanup(&outsider);
    for (int i = 0; i < 3; i++) {
        if (solo[i].dir[0] != '\0')
            node_cleanup(&solo[i]);
        if (across[i].dir[0] != '\0')
            node_cleanup(&across[i]);
    }
    return 0;
}

static void test_cluster(void **state)
{
    char token[1024], fingerprint[32], entry[160], bogus[160], text[256];
    (void)state;

    for (int i = 0; i < MEMBERS; i++)
        node_start(&members[i], NULL);
    node_start(&outsider, NULL);

    /* The first member creates the cluster: the token on stdout, the
     * fingerprint on stderr. */
    struct run_result r = cli_ok(&members[0], ARGS("cluster", "create", "team"));
    snprintf(token, sizeof(token), "%.*s", (int)strcspn(r.out, "\n"), r.out);
    assert_true(strncmp(token, "mpc1", 4) == 0);
    const char *fp = strstr(r.err, "fingerprint ");
    assert_non_null(fp);
    snprintf(fingerprint, sizeof(fingerprint), "%.19s", fp + strlen("fingerprint "));
    assert_null(strstr(r.err, token)); /* the secret is printed once, on stdout */
    harness_result_free(&r);

    /* The others join with it (a copied token may carry a line end). */
    char pasted[sizeof(token) + 2];
    snprintf(pasted, sizeof(pasted), "%s\n", token);
    for (int i = 1; i < MEMBERS; i++) {
        r = cli_ok(&members[i], ARGS("cluster", "join", pasted, "--port", "0"));
        assert_contains(r.out, "joined cluster team");
        assert_contains(r.out, fingerprint); /* the same cluster, as the members compare */
        harness_result_free(&r);
    }
    for (int i = 0; i < MEMBERS; i++)
        wait_table(&members[i], "team", MEMBERS - 1);

    /* Each member is on its own public network too: a second, separate table. */
    json_t *pub = network_of(&members[0], "public"), *team = network_of(&members[0], "team");
    assert_non_null(pub);
    assert_non_null(team);
    assert_int_equal(json_integer_value(json_object_get(pub, "table_size")), 0);
    assert_int_equal(json_integer_value(json_object_get(team, "table_size")), MEMBERS - 1);
    assert_int_not_equal(json_integer_value(json_object_get(pub, "port")),
                         json_integer_value(json_object_get(team, "port")));
    assert_string_equal(json_string_value(json_object_get(team, "fingerprint")), fingerprint);
    json_decref(pub);
    json_decref(team);
    r = cli_ok(&members[1], ARGS("cluster", "list"));
    assert_contains(r.out, "team");
    assert_contains(r.out, fingerprint);
    harness_result_free(&r);

    /* The outsider knows the name and a member's address and key, not the
     * secret: its own "team" has another secret. */
    long drops_before = auth_drops_of(&members[0], "team");
    entry_of(&members[0], "team", entry, sizeof(entry));
    r = cli_ok(&outsider, ARGS("cluster", "create", "team", "--bootstrap", entry));
    assert_null(strstr(r.err, fingerprint));
    harness_result_free(&r);
    /* And a public bootstrap entry nobody answers. */
    snprintf(bogus, sizeof(bogus), "%s@127.0.0.1:9",
             "1111111111111111111111111111111111111111111111111111111111111111");
    r = cli_ok(&outsider, ARGS("bootstrap", "add", bogus));
    harness_result_free(&r);

    json_t *warned = NULL;
    for (int waited = 0; waited < WARN_TIMEOUT_MS && warned == NULL; waited += 500) {
        sleep_ms(500);
        json_t *net = network_of(&outsider, "team");
        if (json_object_get(net, "warning") != NULL)
            warned = json_incref(net);
        json_decref(net);
    }
    if (warned == NULL)
        fail_msg("the outsider's status gave no warning within %d ms", WARN_TIMEOUT_MS);
    assert_contains(json_string_value(json_object_get(warned, "warning")),
                    "bootstrap list stale or unreachable");
    assert_int_equal(json_integer_value(json_object_get(warned, "table_size")), 0);
    json_decref(warned);
    assert_int_equal(table_of(&outsider, "public"), 0);
    r = cli_ok(&outsider, ARGS("status"));
    assert_contains(r.out, "warning         public: no peers: bootstrap list stale");
    harness_result_free(&r);
    /* Dropped at the first check, and it never entered a member's table. */
    assert_true(auth_drops_of(&members[0], "team") > drops_before);
    assert_int_equal(table_of(&members[0], "team"), MEMBERS - 1);
    json_t *peers = node_call(&outsider, "peers", "{\"network\":\"team\"}");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(peers, "result"), "network")), "team");
    assert_int_equal(json_array_size(json_object_get(json_object_get(peers, "result"), "peers")),
                     0);
    json_decref(peers);
    r = cli_ok(&members[0], ARGS("peers", "--network", "team", "--json"));
    peers = json_loads(r.out, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(peers, "peers")), MEMBERS - 1);
    json_decref(peers);
    harness_result_free(&r);

    /* At the link level too: a public-network dialer (IK preamble) and one
     * that guesses the cluster pattern (IKpsk1, without the secret: its
     * prologue differs, so the first encrypted field fails, the dialer's
     * static key) both get not one byte back, and the member counts why. */
    json_t *tnet = network_of(&members[0], "team");
    int team_port = (int)json_integer_value(json_object_get(tnet, "port"));
    json_decref(tnet);
    long preamble_before = link_drop_of(&members[0], "team", "link_preamble");
    static const uint8_t ik[4] = {'m', 'p', 1, 1};
    assert_int_equal(probe(team_port, ik, sizeof(ik)), 0);
    assert_true(link_drop_of(&members[0], "team", "link_preamble") > preamble_before);
    uint8_t guess[4 + 2 + 96] = {'m', 'p', 1, 2, 0, 96};
    for (size_t i = 6; i < sizeof(guess); i++)
        guess[i] = (uint8_t)(i * 37 + 11);
    long key_before = link_drop_of(&members[0], "team", "link_peer_key");
    assert_int_equal(probe(team_port, guess, sizeof(guess)), 0);
    assert_true(link_drop_of(&members[0], "team", "link_peer_key") > key_before);

    /* bootstrap add|rm on the public network, live and remembered. */
    entry_of(&members[0], "public", entry, sizeof(entry));
    r = cli_ok(&members[1], ARGS("bootstrap", "add", entry));
    assert_contains(r.out, "added");
    harness_result_free(&r);
    wait_table(&members[1], "public", 1);
    r = cli_ok(&members[1], ARGS("bootstrap", "list"));
    assert_contains(r.out, entry);
    harness_result_free(&r);
    r = cli_ok(&members[1], ARGS("bootstrap", "rm", strchr(entry, '@') + 1));
    assert_contains(r.out, "removed 1 entry");
    harness_result_free(&r);
    r = cli_ok(&members[1], ARGS("bootstrap", "list", "--json"));
    assert_contains(r.out, "\"entries\":[]");
    assert_contains(r.out, "\"source\":\"store\"");
    harness_result_free(&r);

    /* A restarted member rejoins the cluster on the port it had. */
    json_t *before = network_of(&members[1], "team");
    json_int_t port = json_integer_value(json_object_get(before, "port"));
    json_decref(before);
    node_stop(&members[1]);
    node_start(&members[1], NULL);
    json_t *after = network_of(&members[1], "team");
    assert_non_null(after);
    assert_int_equal(json_integer_value(json_object_get(after, "port")), port);
    json_decref(after);
    wait_table(&members[1], "team", MEMBERS - 1);

    /* A member that leaves stops that network at once, and for good. */
    r = cli_ok(&members[2], ARGS("cluster", "leave", "team"));
    assert_contains(r.out, "left cluster team");
    harness_result_free(&r);
    assert_null(network_of(&members[2], "team"));
    json_t *still = network_of(&members[2], "public");
    assert_non_null(still);
    json_decref(still);
    r = cli_ok(&members[2], ARGS("cluster", "list"));
    assert_contains(r.out, "no clusters joined");
    harness_result_free(&r);
    node_stop(&members[2]);
    node_start(&members[2], NULL);
    assert_null(network_of(&members[2], "team"));

    /* Wrong input gets one clear line and a data error. */
    memcpy(text, token, 60);
    text[60] = '\0';
    struct run_result bad =
        harness_run(NULL, ARGS("cluster", "join", text, "--data-dir", members[2].dir));
    assert_int_equal(bad.status, 65); /* EX_DATAERR */
    assert_contains(bad.err, "cluster token");
    harness_result_free(&bad);
    bad = harness_run(NULL, ARGS("cluster", "leave", "nope", "--data-dir", members[2].dir));
    assert_int_equal(bad.status, 67); /* EX_NOUSER */
    harness_result_free(&bad);

    for (int i = 0; i < MEMBERS; i++)
        node_stop(&members[i]);
    node_stop(&outsider);
}

/* Two cluster_only nodes talk only through their cluster: messaging starts
 * on the first cluster joined, and a message goes over the cluster's PSK
 * links. A bootstrap-only node serves the DHT and nothing else. */
static void test_cluster_only(void **state)
{
    struct node *x = &solo[0], *y = &solo[1], *boot = &solo[2];
    char token[1024];
    (void)state;

    for (int i = 0; i < 3; i++)
        node_init(&solo[i]);

    node_start(x, ARGS("--cluster-only"));
    node_start(y, ARGS("--cluster-only"));
    node_start(boot, ARGS("--bootstrap-only"));
    json_t *s = status_json(x);
    assert_int_equal(json_array_size(json_object_get(s, "networks")), 0);
    assert_null(json_object_get(s, "messages"));
    json_decref(s);

    struct run_result r = cli_ok(x, ARGS("cluster", "create", "lab"));
    snprintf(token, sizeof(token), "%.*s", (int)strcspn(r.out, "\n"), r.out);
    harness_result_free(&r);
    r = cli_ok(y, ARGS("cluster", "join", token));
    harness_result_free(&r);
    wait_table(x, "lab", 1);
    wait_table(y, "lab", 1);
    s = status_json(y);
    assert_string_equal(json_string_value(json_object_get(s, "primary")), "lab");
    assert_non_null(json_object_get(s, "messages"));
    assert_int_equal(json_array_size(json_object_get(s, "networks")), 1);
    json_decref(s);

    r = cli_ok(x, ARGS("contacts", "add", y->address, "--name", "y"));
    harness_result_free(&r);
    r = cli_ok(y, ARGS("contacts", "add", x->address, "--name", "x"));
    harness_result_free(&r);
    r = cli_ok(x, ARGS("send", "y", "hello over the cluster", "--wait", "--timeout", "30"));
    harness_result_free(&r);
    r = cli_ok(y, ARGS("inbox"));
    assert_contains(r.out, "hello over the cluster");
    harness_result_free(&r);
    json_t *lab = network_of(x, "lab");
    assert_true(json_integer_value(json_object_get(json_object_get(lab, "links"), "up")) +
                    json_integer_value(json_object_get(json_object_get(lab, "links"), "dials")) >
                0);
    json_decref(lab);

    /* The bootstrap node: public network, no messaging. */
    s = status_json(boot);
    assert_true(json_is_true(json_object_get(s, "bootstrap_only")));
    assert_null(json_object_get(s, "messages"));
    assert_int_equal(json_array_size(json_object_get(s, "networks")), 1);
    json_decref(s);
    struct run_result no =
        harness_run(NULL, ARGS("send", x->address, "hi", "--data-dir", boot->dir));
    assert_int_equal(no.status, 69); /* EX_UNAVAILABLE, with why */
    assert_contains(no.err, "does not offer \"send\"");
    assert_contains(no.err, "runs no messaging");
    harness_result_free(&no);

    node_stop(x);
    node_stop(y);
    node_stop(boot);
}

/* The networks `contacts show --json` gives for who on n (a new reference). */
static json_t *contact_networks(struct node *n, const char *who, bool *pinned_out)
{
    struct run_result r = cli_ok(n, ARGS("contacts", "show", who, "--json"));
    json_t *c = json_loads(r.out, 0, NULL);
    harness_result_free(&r);
    assert_non_null(c);
    json_t *nets = json_incref(json_object_get(c, "networks"));
    *pinned_out = json_is_true(json_object_get(c, "networks_pinned"));
    json_decref(c);
    assert_non_null(nets);
    return nets;
}

/* How many of n's debug lines say it looked up address's presence, and how
 * many of those were on network 0 (the public one here). */
static void lookups_of(struct node *n, const char *address, int *all_out, int *public_out)
{
    char line[1024], want[256];
    FILE *f = fopen(n->log, "r");
    assert_non_null(f);
    snprintf(want, sizeof(want), "looking up the presence of %s on network ", address);
    *all_out = 0;
    *public_out = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *at = strstr(line, want);
        if (at == NULL)
            continue;
        (*all_out)++;
        if (strncmp(at + strlen(want), "0\n", 2) == 0)
            (*public_out)++;
    }
    fclose(f);
}

static long links_out(struct node *n, const char *name)
{
    json_t *net = network_of(n, name);
    assert_non_null(net);
    long v = (long)json_integer_value(
        json_object_get(json_object_get(net, "links"), "msgs_out"));
    json_decref(net);
    return v;
}

/* One node on the public network and in a cluster reaches a contact on
 * each: a cluster-only contact over the cluster, a public-only one over the
 * public network; each answers on the network it shares with the node. */
static void test_across_networks(void **state)
{
    struct node *both = &across[0], *member = &across[1], *pub = &across[2];
    char token[1024], entry[160];
    (void)state;

    for (int i = 0; i < 3; i++)
        node_init(&across[i]);
    node_start(both, NULL);
    entry_of(both, "public", entry, sizeof(entry));
    node_start(member, ARGS("--cluster-only"));
    node_start(pub, ARGS("--bootstrap", entry));
    struct run_result r = cli_ok(both, ARGS("cluster", "create", "ops"));
    snprintf(token, sizeof(token), "%.*s", (int)strcspn(r.out, "\n"), r.out);
    harness_result_free(&r);
    r = cli_ok(member, ARGS("cluster", "join", token));
    harness_result_free(&r);
    wait_table(both, "ops", 1);
    wait_table(both, "public", 1);
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 3; k++) {
            if (k == i || (i != 0 && k != 0))
                continue; /* member and pub share no network: not contacts */
            r = cli_ok(&across[i], ARGS("contacts", "add", across[k].address));
            harness_result_free(&r);
        }
    }

    r = cli_ok(both, ARGS("send", member->address, "to the cluster member", "--wait", "--timeout",
                          "60"));
    harness_result_free(&r);
    r = cli_ok(both, ARGS("send", pub->address, "to the public node", "--wait", "--timeout", "60"));
    harness_result_free(&r);
    r = cli_ok(member, ARGS("send", both->address, "back over ops", "--wait", "--timeout", "60"));
    harness_result_free(&r);
    r = cli_ok(pub, ARGS("send", both->address, "back over public", "--wait", "--timeout", "60"));
    harness_result_free(&r);

    r = cli_ok(member, ARGS("inbox"));
    assert_contains(r.out, "to the cluster member");
    harness_result_free(&r);
    r = cli_ok(pub, ARGS("inbox"));
    assert_contains(r.out, "to the public node");
    assert_null(strstr(r.out, "cluster member"));
    harness_result_free(&r);
    r = cli_ok(both, ARGS("inbox"));
    assert_contains(r.out, "back over ops");
    assert_contains(r.out, "back over public");
    harness_result_free(&r);
    /* Each network carried traffic: the cluster's links and the public ones. */
    assert_true(links_out(both, "ops") > 0);
    assert_true(links_out(both, "public") > 0);
    assert_true(links_out(member, "ops") > 0);

    /* The node on both networks learnt which one reaches each contact. */
    bool pinned = true;
    json_t *nets = contact_networks(both, member->address, &pinned);
    assert_int_equal(json_array_size(nets), 1);
    assert_string_equal(json_string_value(json_array_get(nets, 0)), "ops");
    assert_false(pinned);
    json_decref(nets);
    nets = contact_networks(both, pub->address, &pinned);
    assert_int_equal(json_array_size(nets), 1);
    assert_string_equal(json_string_value(json_array_get(nets, 0)), "public");
    json_decref(nets);
    r = cli_ok(both, ARGS("contacts", "show", member->address));
    assert_contains(r.out, "networks    ops (seen there: looked up there first)");
    harness_result_free(&r);

    /* A contact pinned to the cluster (an account that is offline: a member
     * of the first test, stopped) is looked up only there, never on the
     * public DHT, while its message waits. */
    const char *away = members[0].address;
    assert_true(strncmp(away, "mp1", 3) == 0);
    r = cli_ok(both, ARGS("contacts", "add", away, "--name", "away", "--network", "ops"));
    harness_result_free(&r);
    nets = contact_networks(both, "away", &pinned);
    assert_true(pinned);
    assert_int_equal(json_array_size(nets), 1);
    assert_string_equal(json_string_value(json_array_get(nets, 0)), "ops");
    json_decref(nets);
    r = cli_ok(both, ARGS("contacts", "show", "away"));
    assert_contains(r.out, "networks    ops (pinned: looked up only there)");
    harness_result_free(&r);
    r = cli_ok(both, ARGS("send", "away", "wait for me"));
    harness_result_free(&r);
    int all = 0, on_public = 0;
    for (int waited = 0; waited < FORM_TIMEOUT_MS && all < 2; waited += 200) {
        sleep_ms(200);
        lookups_of(both, away, &all, &on_public);
    }
    if (all < 2)
        fail_msg("%s was looked up %d times, not twice, in %d ms", away, all, FORM_TIMEOUT_MS);
    assert_int_equal(on_public, 0);
    /* Unpinned, it may be looked up everywhere again. */
    r = cli_ok(both, ARGS("contacts", "add", away, "--unpin"));
    harness_result_free(&r);
    r = cli_ok(both, ARGS("contacts", "show", "away"));
    assert_contains(r.out, "networks    none seen yet");
    harness_result_free(&r);
    /* The unpinned cluster member was looked up on the public DHT first,
     * before its network was known: the log tells the two apart. */
    lookups_of(both, member->address, &all, &on_public);
    assert_true(on_public > 0);

    for (int i = 0; i < 3; i++)
        node_stop(&across[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cluster),
        cmocka_unit_test(test_cluster_only),
        cmocka_unit_test(test_across_networks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
