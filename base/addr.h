/*
 * addr: a network endpoint (IPv4 or IPv6 address and a UDP/TCP port) as a
 * plain value type, with a text form "1.2.3.4:5" / "[::1]:5".
 *
 * Parsing takes numeric addresses only: resolving host names is I/O and
 * belongs to node/. The struct has no padding surprises so it can be compared
 * with addr_equal and used as a table key.
 */
#ifndef MP_BASE_ADDR_H
#define MP_BASE_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

enum addr_family {
    ADDR_FAMILY_NONE = 0,
    ADDR_FAMILY_IPV4 = 4,
    ADDR_FAMILY_IPV6 = 6,
};

struct addr {
    uint8_t family; /* enum addr_family */
    uint16_t port;  /* host byte order */
    uint8_t ip[16]; /* IPv4 uses the first 4 bytes, the rest are zero */
};

/* Longest text addr_format writes, with the terminating NUL:
 * "[" + 45 (IPv6 text) + "]:" + 5 (port) + NUL. */
#define ADDR_TEXT_MAX 55

/* Parse "a.b.c.d:port" or "[v6]:port". Returns MP_ERR_NET_ADDR on anything
 * else (host names, missing or out-of-range port, trailing bytes). */
enum mp_err addr_parse(const char *text, struct addr *addr_out);

/* Parse a bare numeric IP (no port) and set the port given. */
enum mp_err addr_from_ip(const char *ip, uint16_t port, struct addr *addr_out);

/* Write the text form into buf (at least ADDR_TEXT_MAX bytes); returns buf. */
const char *addr_format(const struct addr *addr, char *buf, size_t size);

bool addr_equal(const struct addr *a, const struct addr *b);

/* True for 127.0.0.0/8 and ::1. */
bool addr_is_loopback(const struct addr *addr);

#endif
