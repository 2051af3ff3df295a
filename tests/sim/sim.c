#include "tests/sim/sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/box.h"
#include "tests/support/test_env.h"

#define SIM_PORT 4000

enum ev_kind { EV_PACKET, EV_WAKE, EV_JOIN };

struct event {
    uint64_t at;
    uint64_t seq;
    uint8_t kind;
    unsigned node; /* destination / woken / joining */
    unsigned via;  /* EV_JOIN: bootstrap node; EV_PACKET: sender */
    uint16_t len;
    uint8_t *data;
};

struct node {
    struct test_env te; /* first: env.ctx points here and at the node alike */
    struct env env;
    struct sim *sim;
    unsigned idx;
    struct addr addr;
    struct box_key *key;
    struct dht *dht;
    bool dead;
    unsigned group;
    bool wake_live;
    uint64_t wake_at;
    sim_outsider_cb *outsider_cb; /* set for outsiders, which have no dht */
    void *outsider_ctx;
};

struct sim {
    struct sim_config cfg;
    uint64_t now;
    uint64_t seq;
    uint64_t rng;
    uint64_t sent, lost;
    struct node **nodes;
    unsigned n, cap;
    struct event *heap;
    size_t hn, hcap;
};

static void *xalloc(size_t n)
{
    void *p = calloc(1, n);
    if (p == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return p;
}

void sim_config_default(struct sim_config *cfg, uint64_t seed)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->seed = seed;
    cfg->latency_min_ms = 10;
    cfg->latency_max_ms = 80;
    dht_config_default(&cfg->dht);
    cfg->dht.per_ip_per_bucket = 0;
    cfg->dht.rate_per_s = 0;
}

uint64_t sim_rand(struct sim *sim)
{
    /* splitmix64 */
    uint64_t z = (sim->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

struct sim *sim_new(const struct sim_config *cfg)
{
    struct sim *sim = xalloc(sizeof(*sim));
    sim->cfg = *cfg;
    sim->rng = cfg->seed ^ 0x5eed5eed5eedULL;
    sim->now = 1000000; /* test_env's origin */
    return sim;
}

void sim_free(struct sim *sim)
{
    if (sim == NULL)
        return;
    for (unsigned i = 0; i < sim->n; i++) {
        dht_free(sim->nodes[i]->dht);
        box_key_free(sim->nodes[i]->key);
        free(sim->nodes[i]);
    }
    for (size_t i = 0; i < sim->hn; i++)
        free(sim->heap[i].data);
    free(sim->heap);
    free(sim->nodes);
    free(sim);
}

static bool ev_less(const struct event *a, const struct event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void push(struct sim *sim, struct event ev)
{
    if (sim->hn == sim->hcap) {
        sim->hcap = sim->hcap ? sim->hcap * 2 : 1024;
        sim->heap = realloc(sim->heap, sim->hcap * sizeof(*sim->heap));
        if (sim->heap == NULL)
            abort();
    }
    ev.seq = sim->seq++;
    size_t i = sim->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_less(&ev, &sim->heap[p]))
            break;
        sim->heap[i] = sim->heap[p];
        i = p;
    }
    sim->heap[i] = ev;
}

static struct event pop(struct sim *sim)
{
    struct event top = sim->heap[0];
    struct event last = sim->heap[--sim->hn];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= sim->hn)
            break;
        if (c + 1 < sim->hn && ev_less(&sim->heap[c + 1], &sim->heap[c]))
            c++;
        if (!ev_less(&sim->heap[c], &last))
            break;
        sim->heap[i] = sim->heap[c];
        i = c;
    }
    if (sim->hn > 0)
        sim->heap[i] = last;
    return top;
}

static uint64_t node_now(void *ctx)
{
    return ((struct node *)ctx)->sim->now;
}

static int addr_node(const struct sim *sim, const struct addr *a)
{
    if (a->family != ADDR_FAMILY_IPV4 || a->ip[0] != 10 || a->port != SIM_PORT)
        return -1;
    unsigned idx = ((unsigned)a->ip[1] << 16 | (unsigned)a->ip[2] << 8 | a->ip[3]) - 1;
    return idx < sim->n ? (int)idx : -1;
}

static unsigned pair_latency(const struct sim *sim, unsigned a, unsigned b)
{
    unsigned span = sim->cfg.latency_max_ms - sim->cfg.latency_min_ms + 1;
    uint64_t lo = a < b ? a : b, hi = a < b ? b : a;
    uint64_t h = (lo * 0x9e3779b97f4a7c15ULL) ^ (hi * 0xc2b2ae3d27d4eb4fULL) ^ sim->cfg.seed;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return sim->cfg.latency_min_ms + (unsigned)(h % span);
}

static enum mp_err node_send(void *ctx, const struct addr *to, const uint8_t *buf, size_t len)
{
    struct node *from = ctx;
    struct sim *sim = from->sim;
    sim->sent++;
    int dst = addr_node(sim, to);
    if (dst < 0 || sim->nodes[dst]->group != from->group ||
        (sim->cfg.loss > 0 && (double)(sim_rand(sim) >> 11) / 9007199254740992.0 < sim->cfg.loss)) {
        sim->lost++;
        return MP_OK; /* lost on the way: the sender cannot tell */
    }
    struct event ev = {0};
    ev.kind = EV_PACKET;
    ev.at = sim->now + pair_latency(sim, from->idx, (unsigned)dst);
    ev.node = (unsigned)dst;
    ev.via = from->idx;
    ev.len = (uint16_t)len;
    ev.data = malloc(len ? len : 1);
    if (ev.data == NULL)
        abort();
    memcpy(ev.data, buf, len);
    push(sim, ev);
    return MP_OK;
}

static struct node *new_slot(struct sim *sim)
{
    if (sim->n == sim->cap) {
        sim->cap = sim->cap ? sim->cap * 2 : 64;
        sim->nodes = realloc(sim->nodes, sim->cap * sizeof(*sim->nodes));
        if (sim->nodes == NULL)
            abort();
    }
    struct node *nd = xalloc(sizeof(*nd));
    unsigned idx = sim->n;
    nd->sim = sim;
    nd->idx = idx;
    test_env_init(&nd->te, sim->cfg.seed * 1000003ULL + idx);
    nd->env = nd->te.env; /* ctx == &nd->te == nd */
    nd->env.now_ms = node_now;
    nd->env.send = node_send;
    nd->addr.family = ADDR_FAMILY_IPV4;
    nd->addr.port = SIM_PORT;
    nd->addr.ip[0] = 10;
    nd->addr.ip[1] = (uint8_t)((idx + 1) >> 16);
    nd->addr.ip[2] = (uint8_t)((idx + 1) >> 8);
    nd->addr.ip[3] = (uint8_t)(idx + 1);
    sim->nodes[sim->n++] = nd;
    return nd;
}

unsigned sim_add_outsider(struct sim *sim, sim_outsider_cb *cb, void *ctx)
{
    struct node *nd = new_slot(sim);
    nd->outsider_cb = cb;
    nd->outsider_ctx = ctx;
    return nd->idx;
}

void sim_send_from(struct sim *sim, unsigned idx, const struct addr *to, const uint8_t *data,
                   size_t len)
{
    node_send(sim->nodes[idx], to, data, len);
}

unsigned sim_add_node(struct sim *sim)
{
    return sim_add_node_config(sim, &sim->cfg.dht);
}

unsigned sim_add_node_config(struct sim *sim, const struct dht_config *cfg)
{
    struct node *nd = new_slot(sim);
    unsigned idx = nd->idx;
    uint8_t seed[BOX_SEED_BYTES];
    env_random(&nd->env, seed, sizeof(seed));
    if (box_key_from_ed25519_seed(seed, &nd->key) != MP_OK ||
        dht_new(&nd->env, nd->key, cfg, &nd->dht) != MP_OK) {
        fprintf(stderr, "sim: cannot create node %u\n", idx);
        abort();
    }
    return idx;
}

unsigned sim_count(const struct sim *sim)
{
    return sim->n;
}

static void schedule(struct sim *sim, struct node *nd)
{
    uint64_t at = sim->now + dht_tick(nd->dht);
    if (!nd->wake_live || at < nd->wake_at) {
        nd->wake_at = at;
        nd->wake_live = true;
        struct event ev = {0};
        ev.kind = EV_WAKE;
        ev.at = at;
        ev.node = nd->idx;
        push(sim, ev);
    }
}

void sim_poke(struct sim *sim, unsigned idx)
{
    if (!sim->nodes[idx]->dead && sim->nodes[idx]->dht != NULL)
        schedule(sim, sim->nodes[idx]);
}

void sim_join_at(struct sim *sim, unsigned idx, unsigned via_idx, uint64_t at_ms)
{
    struct event ev = {0};
    ev.kind = EV_JOIN;
    ev.at = at_ms < sim->now ? sim->now : at_ms;
    ev.node = idx;
    ev.via = via_idx;
    push(sim, ev);
}

void sim_run_until(struct sim *sim, uint64_t t_ms)
{
    while (sim->hn > 0 && sim->heap[0].at <= t_ms) {
        struct event ev = pop(sim);
        struct node *nd = sim->nodes[ev.node];
        sim->now = ev.at;
        if (nd->dead) {
            if (ev.kind == EV_PACKET)
                sim->lost++;
            free(ev.data);
            continue;
        }
        switch (ev.kind) {
        case EV_PACKET:
            if (nd->outsider_cb != NULL) {
                nd->outsider_cb(nd->outsider_ctx, &sim->nodes[ev.via]->addr, ev.data, ev.len);
                free(ev.data);
                break;
            }
            dht_on_datagram(nd->dht, &sim->nodes[ev.via]->addr, ev.data, ev.len);
            free(ev.data);
            schedule(sim, nd);
            break;
        case EV_WAKE:
            if (!nd->wake_live || nd->wake_at != ev.at)
                break; /* superseded by an earlier wake-up */
            nd->wake_live = false;
            schedule(sim, nd);
            break;
        case EV_JOIN:
            dht_bootstrap(nd->dht, box_key_public(sim->nodes[ev.via]->key),
                          &sim->nodes[ev.via]->addr);
            schedule(sim, nd);
            break;
        }
    }
    if (t_ms > sim->now)
        sim->now = t_ms;
}

void sim_run_for(struct sim *sim, uint64_t ms)
{
    sim_run_until(sim, sim->now + ms);
}

uint64_t sim_now(const struct sim *sim)
{
    return sim->now;
}

struct dht *sim_dht(struct sim *sim, unsigned idx)
{
    return sim->nodes[idx]->dht;
}

const struct addr *sim_addr(const struct sim *sim, unsigned idx)
{
    return &sim->nodes[idx]->addr;
}

const uint8_t *sim_pk(const struct sim *sim, unsigned idx)
{
    return sim->nodes[idx]->key ? box_key_public(sim->nodes[idx]->key) : NULL;
}

void sim_kill(struct sim *sim, unsigned idx)
{
    sim->nodes[idx]->dead = true;
}

bool sim_alive(const struct sim *sim, unsigned idx)
{
    return !sim->nodes[idx]->dead && sim->nodes[idx]->dht != NULL;
}

void sim_set_group(struct sim *sim, unsigned idx, unsigned group)
{
    sim->nodes[idx]->group = group;
}

void sim_set_loss(struct sim *sim, double loss)
{
    sim->cfg.loss = loss;
}

int sim_find_id(const struct sim *sim, const uint8_t id[DHT_ID_BYTES])
{
    for (unsigned i = 0; i < sim->n; i++) {
        if (sim->nodes[i]->dht != NULL && memcmp(dht_id(sim->nodes[i]->dht), id, DHT_ID_BYTES) == 0)
            return (int)i;
    }
    return -1;
}

uint64_t sim_sent(const struct sim *sim)
{
    return sim->sent;
}

uint64_t sim_lost(const struct sim *sim)
{
    return sim->lost;
}

uint64_t sim_seed(const struct sim *sim)
{
    return sim->cfg.seed;
}

size_t sim_memory(const struct sim *sim)
{
    return sizeof(*sim) + sim->cap * sizeof(*sim->nodes) + sim->n * sizeof(struct node) +
           sim->hcap * sizeof(struct event);
}
