#include "base/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum mp_err parse_port(const char *text, uint16_t *port_out)
{
    char *end = NULL;

    if (*text < '0' || *text > '9')
        return MP_ERR_NET_ADDR;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || v > 65535)
        return MP_ERR_NET_ADDR;
    *port_out = (uint16_t)v;
    return MP_OK;
}

enum mp_err addr_from_ip(const char *ip, uint16_t port, struct addr *addr_out)
{
    struct addr a;

    memset(&a, 0, sizeof(a));
    a.port = port;
    if (inet_pton(AF_INET, ip, a.ip) == 1)
        a.family = ADDR_FAMILY_IPV4;
    else if (inet_pton(AF_INET6, ip, a.ip) == 1)
        a.family = ADDR_FAMILY_IPV6;
    else
        return MP_ERR_NET_ADDR;
    *addr_out = a;
    return MP_OK;
}

enum mp_err addr_parse(const char *text, struct addr *addr_out)
{
    char host[INET6_ADDRSTRLEN];
    const char *port_text;
    size_t host_len;
    uint16_t port;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return MP_ERR_NET_ADDR;
        host_len = (size_t)(close - text - 1);
        text++;
        port_text = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL || memchr(text, ':', (size_t)(colon - text)) != NULL)
            return MP_ERR_NET_ADDR; /* bare IPv6 needs brackets */
        host_len = (size_t)(colon - text);
        port_text = colon + 1;
    }
    if (host_len == 0 || host_len >= sizeof(host))
        return MP_ERR_NET_ADDR;
    memcpy(host, text, host_len);
    host[host_len] = '\0';
    if (parse_port(port_text, &port) != MP_OK)
        return MP_ERR_NET_ADDR;
    return addr_from_ip(host, port, addr_out);
}

const char *addr_format(const struct addr *addr, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];

    if (addr->family == ADDR_FAMILY_IPV4 && inet_ntop(AF_INET, addr->ip, ip, sizeof(ip)))
        snprintf(buf, size, "%s:%u", ip, addr->port);
    else if (addr->family == ADDR_FAMILY_IPV6 && inet_ntop(AF_INET6, addr->ip, ip, sizeof(ip)))
        snprintf(buf, size, "[%s]:%u", ip, addr->port);
    else
        snprintf(buf, size, "(none)");
    return buf;
}

bool addr_equal(const struct addr *a, const struct addr *b)
{
    return a->family == b->family && a->port == b->port && memcmp(a->ip, b->ip, 16) == 0;
}

bool addr_is_loopback(const struct addr *addr)
{
    static const uint8_t v6_loopback[16] = {[15] = 1};

    if (addr->family == ADDR_FAMILY_IPV4)
        return addr->ip[0] == 127;
    if (addr->family == ADDR_FAMILY_IPV6)
        return memcmp(addr->ip, v6_loopback, 16) == 0;
    return false;
}
