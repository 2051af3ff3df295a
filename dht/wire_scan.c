#include "dht/wire_scan.h"

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

bool wire_scan_one(const uint8_t *data, size_t len)
{
    size_t off = 0;
    uint64_t need = 1; /* objects still to read */

    while (need > 0) {
        if (off >= len || need > len - off)
            return false; /* every object takes at least one byte */
        uint8_t t = data[off++];
        uint64_t skip = 0;  /* payload bytes after the header */
        uint64_t items = 0; /* child objects */
        int lenbytes = 0;
        need--;
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
            /* fixint, nil, bool */
        } else if (t >= 0x80 && t <= 0x8f) {
            items = 2u * (t & 0x0f);
        } else if (t >= 0x90 && t <= 0x9f) {
            items = t & 0x0f;
        } else if (t >= 0xa0 && t <= 0xbf) {
            skip = t & 0x1f;
        } else {
            switch (t) {
            case 0xc4: case 0xd9: lenbytes = 1; break;
            case 0xc5: case 0xda: lenbytes = 2; break;
            case 0xc6: case 0xdb: lenbytes = 4; break;
            case 0xc7: lenbytes = 1; skip = 1; break;
            case 0xc8: lenbytes = 2; skip = 1; break;
            case 0xc9: lenbytes = 4; skip = 1; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: case 0xdd: case 0xde: case 0xdf: {
                int n = (t == 0xdc || t == 0xde) ? 2 : 4;
                if ((size_t)n > len - off)
                    return false;
                items = be(data + off, n);
                if (t >= 0xde)
                    items *= 2;
                off += (size_t)n;
                break;
            }
            default:
                return false; /* 0xc1 is never valid */
            }
        }
        if (lenbytes > 0) {
            if ((size_t)lenbytes > len - off)
                return false;
            skip += be(data + off, lenbytes);
            off += (size_t)lenbytes;
        }
        if (skip > len - off)
            return false;
        off += (size_t)skip;
        need += items;
    }
    return off == len;
}
