/* discover_net.c - NICs, addresses, routes, DNS resolvers.
 *
 * Sources, all below the root (no netlink, no ip tool):
 *   sys/class/net/<if>/{address,mtu,operstate,device/driver}
 *   proc/net/fib_trie     local IPv4 addresses: its "/32 host LOCAL"
 *                         leaves (the kernel's local routing table)
 *   proc/net/route        IPv4 routes; an address belongs to the
 *                         interface whose connected route (no gateway)
 *                         holds it, the longest such prefix winning, and
 *                         takes that route's prefix length; 127.0.0.0/8
 *                         belongs to lo, whose routes live only in the
 *                         local table; an address no connected route
 *                         holds is a /32 (the kernel adds no prefix route
 *                         for one: GCE's addresses, keepalived VIPs) and
 *                         is placed only when a single interface carries
 *                         routes, else listed as unassigned
 *   proc/net/if_inet6     IPv6 addresses with interface, prefix, scope
 *   proc/net/ipv6_route   IPv6 routes
 *   etc/resolv.conf, run/systemd/resolve/resolv.conf   DNS resolvers */
#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "discover_int.h"
#include "util/error.h"
#include "util/vector.h"

/* route(8) flags, linux/route.h and linux/ipv6_route.h */
#define RTF_UP 0x0001
#define RTF_GATEWAY 0x0002
#define RTF_REJECT 0x0200
#define RTF_CACHE 0x01000000
#define RTF_LOCAL 0x80000000

int route_hex_ipv4(const char *hex, char *out, size_t outlen)
{
  unsigned long v;
  uint32_t a;
  char *end;

  if (strlen(hex) != 8)
    return -1;
  v = strtoul(hex, &end, 16);
  if (*end || v > UINT32_MAX)
    return -1;
  /* the kernel prints the __be32 as a host-order number: its bytes in
   * memory are the address in network order */
  a = (uint32_t)v;
  return inet_ntop(AF_INET, &a, out, (socklen_t)outlen) ? 0 : -1;
}

int hex_ipv6(const char *hex, char *out, size_t outlen)
{
  unsigned char a[16];

  if (strlen(hex) != 32)
    return -1;
  for (size_t i = 0; i < 16; i++) {
    unsigned int b;

    if (!isxdigit((unsigned char)hex[2 * i]) ||
        !isxdigit((unsigned char)hex[2 * i + 1]) ||
        sscanf(hex + 2 * i, "%2x", &b) != 1)
      return -1;
    a[i] = (unsigned char)b;
  }
  return inet_ntop(AF_INET6, a, out, (socklen_t)outlen) ? 0 : -1;
}

int netmask_prefix(uint32_t mask)
{
  int n = 0;

  while (n < 32 && (mask & (UINT32_C(1) << (31 - n))))
    n++;
  /* the mask must be exactly n leading ones */
  return mask == (n ? ~UINT32_C(0) << (32 - n) : 0) ? n : -1;
}

json_t *fib_trie_local(const char *text)
{
  json_t *out = json_array();
  char leaf[INET_ADDRSTRLEN] = "";
  const char *p = text;

  while (out && p && *p) {
    const char *eol = strchr(p, '\n'), *s;
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    char line[256];

    if (len >= sizeof line)
      len = sizeof line - 1;
    memcpy(line, p, len);
    line[len] = '\0';
    p = eol ? eol + 1 : NULL;
    if ((s = strstr(line, "|-- ")) != NULL) {
      struct in_addr a;

      s += 4;
      if (inet_pton(AF_INET, s, &a) == 1)
        snprintf(leaf, sizeof leaf, "%s", s);
      else
        leaf[0] = '\0';
      continue;
    }
    s = line + strspn(line, " \t");
    if (leaf[0] && strncmp(s, "/32 host LOCAL", 14) == 0) {
      json_t *v;
      size_t i;
      int dup = 0;

      json_array_foreach(out, i, v)
        if (strcmp(json_string_value(v), leaf) == 0)
          dup = 1;
      if (!dup && json_array_append_new(out, json_string(leaf)) == -1) {
        json_decref(out);
        out = NULL;
      }
    }
  }
  return out;
}

/* One row of proc/net/route, in host order for prefix arithmetic. */
struct route4 {
  char iface[32];
  uint32_t dst, gw, mask;       /* network byte order, as in the file */
  unsigned long flags, metric;
};

DEFINE_VECTOR_TYPE(route4_vector, struct route4);

/* Rows of proc/net/route that are up; NULL if it is unreadable. */
static struct route4 *read_route4(struct discover_ctx *ctx, size_t *n)
{
  CLEANUP_FREE char *text = rootfs_read(&ctx->root, NULL, "proc/net/route");
  route4_vector v = empty_vector;
  char *line, *save = NULL;

  *n = 0;
  if (text == NULL || route4_vector_reserve(&v, 1) == -1)
    return NULL;
  line = strtok_r(text, "\n", &save);           /* the header */
  while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
    struct route4 r;
    unsigned long dst, gw, mask;
    char iface[32];

    if (sscanf(line, "%31s %lx %lx %lx %*d %*d %lu %lx", iface, &dst, &gw,
               &r.flags, &r.metric, &mask) != 6 ||
        dst > UINT32_MAX || gw > UINT32_MAX || mask > UINT32_MAX)
      continue;
    if (!(r.flags & RTF_UP) || (r.flags & RTF_REJECT))
      continue;
    memcpy(r.iface, iface, sizeof r.iface);
    r.dst = (uint32_t)dst;
    r.gw = (uint32_t)gw;
    r.mask = (uint32_t)mask;
    if (route4_vector_append(&v, r) == -1)
      break;                            /* out of memory: what we have */
  }
  *n = v.len;
  return v.ptr;
}

/* The one interface other than lo that routes name, or NULL if there
 * are none or several. */
static const char *only_routed_interface(const struct route4 *rt,
                                         size_t nrt)
{
  const char *one = NULL;

  for (size_t i = 0; i < nrt; i++) {
    if (strcmp(rt[i].iface, "lo") == 0)
      continue;
    if (one && strcmp(one, rt[i].iface) != 0)
      return NULL;
    one = rt[i].iface;
  }
  return one;
}

/* Attach the local IPv4 addresses to interfaces (see the top comment);
 * those no connected route explains go to unassigned.  1 if the sources
 * are unreadable (addresses unknown), -1 on OOM. */
static int assign_ipv4(struct discover_ctx *ctx, json_t *ifaces,
                       json_t *unassigned, const struct route4 *rt,
                       size_t nrt)
{
  CLEANUP_FREE char *trie = rootfs_read(&ctx->root, NULL,
                                        "proc/net/fib_trie");
  CLEANUP_JSON json_t *locals = trie ? fib_trie_local(trie) : NULL;
  json_t *a;
  size_t i;

  if (locals == NULL || rt == NULL)
    return 1;                   /* stays null: unknown */
  json_array_foreach(ifaces, i, a)
    json_object_set_new(a, "ipv4", json_array());
  json_array_foreach(locals, i, a) {
    const char *addr = json_string_value(a), *ifname = NULL;
    struct in_addr in;
    int prefix = -1;
    json_t *nic, *e;
    size_t j;

    if (inet_pton(AF_INET, addr, &in) != 1)
      continue;
    for (j = 0; j < nrt; j++) {
      int pl = netmask_prefix(ntohl(rt[j].mask));

      if (rt[j].gw == 0 && !(rt[j].flags & RTF_GATEWAY) && pl > prefix &&
          (in.s_addr & rt[j].mask) == rt[j].dst) {
        prefix = pl;
        ifname = rt[j].iface;
      }
    }
    if (ifname == NULL && (ntohl(in.s_addr) >> 24) == 127) {
      ifname = "lo";
      prefix = 8;
    }
    if (ifname == NULL && (ifname = only_routed_interface(rt, nrt)))
      prefix = 32;
    nic = NULL;
    json_array_foreach(ifaces, j, e)
      if (ifname &&
          strcmp(json_string_value(json_object_get(e, "name")), ifname) == 0)
        nic = e;
    if (nic == NULL) {
      if (json_array_append_new(unassigned, json_string(addr)) == -1)
        return -1;
      continue;
    }
    e = json_pack("{s:s, s:i}", "address", addr, "prefix", prefix);
    if (e == NULL ||
        json_array_append_new(json_object_get(nic, "ipv4"), e) == -1)
      return -1;
  }
  return 0;
}

static const char *ipv6_scope(unsigned long scope)
{
  /* include/net/ipv6.h IPV6_ADDR_* scope bits as if_inet6 prints them */
  switch (scope & 0x00f0) {
  case 0x00: return "global";
  case 0x10: return "host";
  case 0x20: return "link";
  case 0x40: return "site";
  default: return "other";
  }
}

/* proc/net/if_inet6: "address ifindex prefix scope flags name", hex. */
static int assign_ipv6(struct discover_ctx *ctx, json_t *ifaces)
{
  static const char *const addr_order[] = { "address", NULL };
  CLEANUP_FREE char *text = rootfs_read(&ctx->root, NULL,
                                        "proc/net/if_inet6");
  char *line, *save = NULL;
  json_t *nic;
  size_t i;

  if (text == NULL)
    return 0;
  json_array_foreach(ifaces, i, nic)
    json_object_set_new(nic, "ipv6", json_array());
  for (line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char hex[33], name[32], addr[INET6_ADDRSTRLEN];
    unsigned long idx, plen, scope, flags;
    json_t *e;

    if (sscanf(line, "%32s %lx %lx %lx %lx %31s", hex, &idx, &plen, &scope,
               &flags, name) != 6 || hex_ipv6(hex, addr, sizeof addr) == -1 ||
        plen > 128)
      continue;
    json_array_foreach(ifaces, i, nic) {
      if (strcmp(json_string_value(json_object_get(nic, "name")), name))
        continue;
      e = json_pack("{s:s, s:i, s:s}", "address", addr, "prefix", (int)plen,
                    "scope", ipv6_scope(scope));
      if (e == NULL ||
          json_array_append_new(json_object_get(nic, "ipv6"), e) == -1)
        return -1;
    }
  }
  json_array_foreach(ifaces, i, nic)
    if (json_array_sort(json_object_get(nic, "ipv6"), addr_order) == -1)
      return -1;
  return 0;
}

static json_t *interfaces(struct discover_ctx *ctx)
{
  size_t n, i;
  char **names = rootfs_list(&ctx->root, &n, "sys/class/net");
  json_t *out;

  if (names == NULL)
    return json_null();
  out = json_array();
  for (i = 0; out && i < n; i++) {
    CLEANUP_FREE char *mac = rootfs_value(&ctx->root,
                                          "sys/class/net/%s/address",
                                          names[i]);
    CLEANUP_FREE char *state = rootfs_value(&ctx->root,
                                            "sys/class/net/%s/operstate",
                                            names[i]);
    CLEANUP_FREE char *driver = rootfs_link_name(&ctx->root,
                                  "sys/class/net/%s/device/driver",
                                  names[i]);
    uint64_t mtu;
    int have_mtu = rootfs_u64(&ctx->root, &mtu, "sys/class/net/%s/mtu",
                              names[i]) == 0;
    /* a NIC with no "device" link is software: lo, bridges, bonds, VLANs,
     * tunnels */
    int virt = !rootfs_exists(&ctx->root, "sys/class/net/%s/device",
                              names[i]);
    json_t *e;

    /* the trailing '/' accepts only directories (through their links):
     * not bonding_masters or other files */
    if (!rootfs_exists(&ctx->root, "sys/class/net/%s/", names[i]))
      continue;
    e = json_pack("{s:s, s:o, s:o, s:o, s:o, s:b, s:n, s:n}",
                  "name", names[i], "mac", json_str_or_null(mac),
                  "mtu", json_u64_or_null(have_mtu, mtu),
                  "state", json_str_or_null(state),
                  "driver", json_str_or_null(driver), "virtual", virt,
                  "ipv4", "ipv6");
    if (e == NULL || json_array_append_new(out, e) == -1) {
      json_decref(out);
      out = NULL;
    }
  }
  rootfs_names_free(names, n);
  return out;
}

static int route_add(json_t *routes, const char *family, const char *dst,
                     int prefix, const char *gw, const char *iface,
                     unsigned long metric)
{
  json_t *e = json_pack("{s:s, s:s, s:i, s:o, s:s, s:I}",
                        "family", family, "destination", dst,
                        "prefix", prefix, "gateway", json_str_or_null(gw),
                        "interface", iface, "metric", (json_int_t)metric);

  return e ? json_array_append_new(routes, e) : -1;
}

/* proc/net/ipv6_route: dst dst_len src src_len next_hop metric refcnt
 * use flags iface (hex).  Local, cached, rejected and multicast routes
 * are the kernel's own, not configuration. */
static int routes6(struct discover_ctx *ctx, json_t *routes)
{
  CLEANUP_FREE char *text = rootfs_read(&ctx->root, NULL,
                                        "proc/net/ipv6_route");
  char *line, *save = NULL;

  if (text == NULL)
    return 1;
  for (line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char dhex[33], shex[33], nhex[33], iface[32];
    char dst[INET6_ADDRSTRLEN], gw[INET6_ADDRSTRLEN];
    unsigned long dlen, slen, metric, flags;

    if (sscanf(line, "%32s %lx %32s %lx %32s %lx %*x %*x %lx %31s", dhex,
               &dlen, shex, &slen, nhex, &metric, &flags, iface) != 8 ||
        hex_ipv6(dhex, dst, sizeof dst) == -1 ||
        hex_ipv6(nhex, gw, sizeof gw) == -1 || dlen > 128)
      continue;
    if (!(flags & RTF_UP) || (flags & (RTF_REJECT | RTF_CACHE | RTF_LOCAL)) ||
        strncmp(dhex, "ff", 2) == 0 || strcmp(iface, "lo") == 0)
      continue;
    if (route_add(routes, "ipv6", dst, (int)dlen,
                  (flags & RTF_GATEWAY) ? gw : NULL, iface, metric) == -1)
      return -1;
  }
  return 0;
}

/* The default route of a family with the lowest metric: {address,
 * interface}, or null. */
static json_t *default_gateway(json_t *routes, const char *family)
{
  json_t *r, *best = NULL;
  size_t i;

  json_array_foreach(routes, i, r) {
    if (strcmp(json_string_value(json_object_get(r, "family")), family) ||
        json_integer_value(json_object_get(r, "prefix")) != 0 ||
        json_is_null(json_object_get(r, "gateway")))
      continue;
    if (best == NULL ||
        json_integer_value(json_object_get(r, "metric")) <
        json_integer_value(json_object_get(best, "metric")))
      best = r;
  }
  if (best == NULL)
    return json_null();
  return json_pack("{s:O, s:O}", "address", json_object_get(best, "gateway"),
                   "interface", json_object_get(best, "interface"));
}

/* resolv.conf(5): "nameserver ADDR" lines, "search" (or the older
 * "domain") domains; the last search/domain line wins, as in glibc. */
static int parse_resolv(char *text, json_t **ns, json_t **search)
{
  char *line, *save = NULL;

  *ns = json_array();
  *search = json_array();
  if (*ns == NULL || *search == NULL)
    return -1;
  for (line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char *f[8];
    size_t n = 0;
    char *tok, *s2 = NULL;

    for (tok = strtok_r(line, " \t", &s2); tok && n < 8;
         tok = strtok_r(NULL, " \t", &s2))
      f[n++] = tok;
    if (n < 2 || f[0][0] == '#' || f[0][0] == ';')
      continue;
    if (strcmp(f[0], "nameserver") == 0) {
      if (json_array_append_new(*ns, json_string(f[1])) == -1)
        return -1;
    } else if (strcmp(f[0], "search") == 0 || strcmp(f[0], "domain") == 0) {
      json_array_clear(*search);
      for (size_t i = 1; i < n; i++)
        if (json_array_append_new(*search, json_string(f[i])) == -1)
          return -1;
    }
  }
  return 0;
}

static json_t *dns(struct discover_ctx *ctx)
{
  CLEANUP_FREE char *text = rootfs_read(&ctx->root, NULL, "etc/resolv.conf");
  CLEANUP_FREE char *up = NULL;
  json_t *ns = NULL, *search = NULL, *upns = NULL, *upsearch = NULL;
  json_t *out = NULL;

  if (text == NULL)
    return json_pack("{s:n, s:n, s:n}", "nameservers", "search",
                     "upstream_nameservers");
  if (parse_resolv(text, &ns, &search) == -1)
    goto out;
  /* systemd-resolved's stub: the servers it forwards to are in its own
   * file */
  if (json_array_size(ns) == 1 &&
      strcmp(json_string_value(json_array_get(ns, 0)), "127.0.0.53") == 0 &&
      (up = rootfs_read(&ctx->root, NULL,
                        "run/systemd/resolve/resolv.conf")) != NULL &&
      parse_resolv(up, &upns, &upsearch) == -1)
    goto out;
  out = json_pack("{s:O, s:O, s:o}", "nameservers", ns, "search", search,
                  "upstream_nameservers", upns ? json_incref(upns)
                                               : json_null());
out:
  json_decref(ns);
  json_decref(search);
  json_decref(upns);
  json_decref(upsearch);
  return out;
}

json_t *discover_network(struct discover_ctx *ctx)
{
  static const char *const route_order[] = { "family", "destination",
                                             "prefix", "metric",
                                             "interface", NULL };
  CLEANUP_FREE struct route4 *rt = NULL;
  json_t *ifaces = interfaces(ctx), *routes = NULL, *unassigned = NULL;
  json_t *out = NULL;
  size_t nrt = 0, i;
  int have4 = 1, have6;

  if (ifaces == NULL)
    return NULL;
  rt = read_route4(ctx, &nrt);
  routes = json_array();
  unassigned = json_array();
  if (routes == NULL || unassigned == NULL)
    goto out;
  if (json_is_array(ifaces)) {
    have4 = assign_ipv4(ctx, ifaces, unassigned, rt, nrt);
    if (have4 == -1 || assign_ipv6(ctx, ifaces) == -1)
      goto out;
  }
  for (i = 0; rt && i < nrt; i++) {
    char dst[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN];
    int pl = netmask_prefix(ntohl(rt[i].mask));

    if (pl < 0 || !inet_ntop(AF_INET, &rt[i].dst, dst, sizeof dst) ||
        !inet_ntop(AF_INET, &rt[i].gw, gw, sizeof gw))
      continue;
    if (route_add(routes, "ipv4", dst, pl,
                  (rt[i].flags & RTF_GATEWAY) ? gw : NULL, rt[i].iface,
                  rt[i].metric) == -1)
      goto out;
  }
  have6 = routes6(ctx, routes);
  if (have6 == -1 || json_array_sort(routes, route_order) == -1)
    goto out;
  out = json_pack("{s:O, s:o, s:{s:o, s:o}, s:o, s:o}",
                  "interfaces", ifaces,
                  "routes", rt || have6 == 0 ? json_incref(routes)
                                             : json_null(),
                  "default_gateway",
                    "ipv4", rt ? default_gateway(routes, "ipv4")
                               : json_null(),
                    "ipv6", have6 == 0 ? default_gateway(routes, "ipv6")
                                       : json_null(),
                  "ipv4_unassigned", have4 == 0 ? json_incref(unassigned)
                                                : json_null(),
                  "dns", dns(ctx));
out:
  json_decref(ifaces);
  json_decref(routes);
  json_decref(unassigned);
  return out;
}
