/* blueprint.c - parse and validate blueprints (see blueprint.h). */
#include "blueprint.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "image/names.h"
#include "targets/target.h"
#include "yaml.h"

json_t *blueprint_parse(const char *text, size_t len, json_t **lines)
{
  size_t i = 0;

  while (i < len && isspace((unsigned char)text[i]))
    i++;
  if (i < len && text[i] == '{')
    return json_with_lines(text, len, lines);
  return yaml_to_json(text, len, lines);
}

const char *blueprint_bad_name(json_t *bp, char *field, size_t size)
{
  json_t *h, *v, *d;
  size_t i, k;

  json_array_foreach(json_object_get(bp, "hosts"), i, h) {
    v = json_object_get(h, "name");
    if (json_is_string(v) &&
        hostname_check(json_string_value(v), json_string_length(v)) == -1) {
      snprintf(field, size, "hosts[%zu].name", i);
      return field;
    }
    json_array_foreach(json_object_get(h, "disks"), k, d)
      if (json_is_string(d) &&
          diskname_check(json_string_value(d), json_string_length(d)) == -1) {
        snprintf(field, size, "hosts[%zu].disks[%zu]", i, k);
        return field;
      }
  }
  return NULL;
}

void finding_add(json_t *findings, json_t *lines, const char *severity,
                 const char *path, const char *fmt, ...)
{
  char msg[512];
  json_t *f, *line = NULL;
  va_list ap;
  char p[256];

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* the line of the path, else of its nearest parent */
  snprintf(p, sizeof p, "%s", path);
  while (lines && (line = json_object_get(lines, p)) == NULL && *p) {
    char *cut = strrchr(p, '.'), *br = strrchr(p, '[');

    if (br && (!cut || br > cut))
      *br = '\0';
    else if (cut)
      *cut = '\0';
    else
      *p = '\0';
  }
  f = json_pack("{s:s, s:s, s:s}", "severity", severity, "path", path,
                "message", msg);
  /* a missing top-level field belongs to the document: line 1 */
  json_object_set_new(f, "line", line ? json_incref(line)
                                 : lines ? json_integer(1) : json_null());
  json_array_append_new(findings, f);
}

int ipv4_parse(const char *text, uint32_t *ip)
{
  struct in_addr a;

  if (text == NULL || inet_pton(AF_INET, text, &a) != 1)
    return -1;
  *ip = ntohl(a.s_addr);
  return 0;
}

int cidr_parse(const char *text, uint32_t *net, int *prefix)
{
  char buf[32], *slash, *end;
  long p;

  if (text == NULL || strlen(text) >= sizeof buf)
    return -1;
  memcpy(buf, text, strlen(text) + 1);
  slash = strchr(buf, '/');
  if (slash == NULL)
    return -1;
  *slash = '\0';
  p = strtol(slash + 1, &end, 10);
  if (*end || slash[1] == '\0' || p < 0 || p > 32 ||
      ipv4_parse(buf, net) == -1)
    return -1;
  *prefix = (int)p;
  return 0;
}

static uint32_t mask_of(int prefix)
{
  return prefix == 0 ? 0 : UINT32_MAX << (32 - prefix);
}

/* Keys allowed in an object; others are findings (typos must not pass). */
static int check_keys(json_t *obj, const char *const *allowed,
                      const char *path, json_t *lines, json_t *findings)
{
  const char *key;
  json_t *v;
  int errors = 0;

  json_object_foreach(obj, key, v) {
    size_t i;

    for (i = 0; allowed[i]; i++)
      if (strcmp(allowed[i], key) == 0)
        break;
    if (allowed[i] == NULL) {
      char p[600], names[256];
      size_t n = 0;

      for (i = 0; allowed[i] && n < sizeof names; i++)
        n += (size_t)snprintf(names + n, sizeof names - n, "%s%s",
                              i ? ", " : "", allowed[i]);
      snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", key);
      finding_add(findings, lines, "error", p, "unknown field '%s' (allowed "
                  "here: %s)", key, names);
      errors++;
    }
  }
  return errors;
}

static const char *str_field(json_t *obj, const char *key, const char *path,
                             int required, json_t *lines, json_t *findings,
                             int *errors)
{
  json_t *v = json_object_get(obj, key);
  char p[600];

  snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", key);
  if (v == NULL || json_is_null(v)) {
    if (required) {
      finding_add(findings, lines, "error", p, "'%s' is required", key);
      (*errors)++;
    }
    return NULL;
  }
  if (!json_is_string(v) || json_string_length(v) == 0) {
    finding_add(findings, lines, "error", p, "'%s' must be a non-empty "
                "string", key);
    (*errors)++;
    return NULL;
  }
  return json_string_value(v);
}

struct subnet {
  const char *name;
  uint32_t net;
  int prefix;
  char path[256];
};

#define MAX_SUBNETS 256

/* The static IPs given so far, to find one given twice: an open-addressing
 * set sized for every host of the blueprint, so any number of hosts is
 * checked in linear time.  0.0.0.0 is never a host's address, so 0 marks
 * an empty slot. */
struct ip_set {
  uint32_t *slot;
  size_t mask;
};

static int ip_set_init(struct ip_set *set, size_t hosts)
{
  size_t n = 16;

  while (n < 2 * hosts && n < (SIZE_MAX >> 2))
    n *= 2;
  set->mask = n - 1;
  set->slot = calloc(n, sizeof *set->slot);
  if (set->slot == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  return 0;
}

/* Add a; 1 if it was there already. */
static int ip_set_add(struct ip_set *set, uint32_t a)
{
  size_t i = (a * UINT32_C(2654435761)) & set->mask;  /* Knuth's hash */

  if (a == 0)
    return 0;
  while (set->slot[i] != 0) {
    if (set->slot[i] == a)
      return 1;
    i = (i + 1) & set->mask;
  }
  set->slot[i] = a;
  return 0;
}

/* A port or a range of ports: "22", 22 or "8000-8099".  0 with lo/hi,
 * -1 when it is not one. */
static int ports_parse(json_t *v, long *lo, long *hi)
{
  const char *s;
  char *end;

  if (json_is_integer(v)) {
    *lo = *hi = (long)json_integer_value(v);
    return *lo >= 1 && *lo <= 65535 ? 0 : -1;
  }
  if (!json_is_string(v))
    return -1;
  s = json_string_value(v);
  *lo = strtol(s, &end, 10);
  if (end == s || *lo < 1 || *lo > 65535)
    return -1;
  if (*end == '\0') {
    *hi = *lo;
    return 0;
  }
  if (*end != '-')
    return -1;
  s = end + 1;
  *hi = strtol(s, &end, 10);
  if (end == s || *end != '\0' || *hi < *lo || *hi > 65535)
    return -1;
  return 0;
}

/* networks[i].allow: the inbound rules of the network's security group
 * (AWS), NSG (Azure), firewall (GCP) or security group (OpenStack);
 * nothing else is let in. */
static int validate_allow(json_t *net, const char *path, json_t *lines,
                          json_t *findings)
{
  static const char *const rule_keys[] = { "proto", "ports", "from", NULL };
  json_t *allow = json_object_get(net, "allow"), *rule;
  char apath[64], p[300];
  size_t j;
  int errors = 0;

  if (allow == NULL || json_is_null(allow))
    return 0;
  snprintf(apath, sizeof apath, "%s.allow", path);
  if (!json_is_array(allow)) {
    finding_add(findings, lines, "error", apath, "'allow' must be a list of "
                "rules {proto, ports, from}");
    return 1;
  }
  json_array_foreach(allow, j, rule) {
    const char *proto, *from;
    char rpath[96];
    uint32_t net_addr;
    int prefix;
    long lo, hi;

    snprintf(rpath, sizeof rpath, "%s[%zu]", apath, j);
    if (!json_is_object(rule)) {
      finding_add(findings, lines, "error", rpath, "a rule must be a mapping "
                  "{proto: tcp|udp|icmp, ports: 22 or 8000-8099, from: "
                  "CIDR}");
      errors++;
      continue;
    }
    errors += check_keys(rule, rule_keys, rpath, lines, findings);
    proto = str_field(rule, "proto", rpath, 1, lines, findings, &errors);
    from = str_field(rule, "from", rpath, 1, lines, findings, &errors);
    if (proto && strcmp(proto, "tcp") && strcmp(proto, "udp") &&
        strcmp(proto, "icmp")) {
      snprintf(p, sizeof p, "%s.proto", rpath);
      finding_add(findings, lines, "error", p, "'%s': use tcp, udp or icmp",
                  proto);
      errors++;
    }
    snprintf(p, sizeof p, "%s.ports", rpath);
    if (proto && strcmp(proto, "icmp") == 0) {
      if (json_object_get(rule, "ports")) {
        finding_add(findings, lines, "error", p, "icmp has no ports");
        errors++;
      }
    } else if (proto && (strcmp(proto, "tcp") == 0 ||
                         strcmp(proto, "udp") == 0) &&
               ports_parse(json_object_get(rule, "ports"), &lo, &hi) == -1) {
      finding_add(findings, lines, "error", p, "%s needs 'ports': a port "
                  "(22) or a range (8000-8099) within 1-65535", proto);
      errors++;
    }
    snprintf(p, sizeof p, "%s.from", rpath);
    if (from && cidr_parse(from, &net_addr, &prefix) == -1) {
      finding_add(findings, lines, "error", p, "'%s' is not an IPv4 CIDR "
                  "like 10.0.0.0/8 (0.0.0.0/0 for anywhere)", from);
      errors++;
    } else if (from && (net_addr & ~mask_of(prefix))) {
      finding_add(findings, lines, "error", p, "%s has host bits set", from);
      errors++;
    }
  }
  return errors;
}

static int validate_networks(json_t *bp, json_t *lines, json_t *findings,
                             struct subnet *subs, size_t *nsubs)
{
  static const char *const net_keys[] = { "name", "cidr", "subnets", "allow",
                                          NULL };
  static const char *const sub_keys[] = { "name", "cidr", NULL };
  json_t *nets = json_object_get(bp, "networks"), *net;
  uint32_t nnet[MAX_SUBNETS];
  int npre[MAX_SUBNETS];
  size_t i, k;
  int errors = 0;

  *nsubs = 0;
  if (nets == NULL || json_is_null(nets))
    return 0;
  if (!json_is_array(nets)) {
    finding_add(findings, lines, "error", "networks", "'networks' must be a "
                "list");
    return 1;
  }
  json_array_foreach(nets, i, net) {
    char path[32];
    const char *name, *cidr;
    json_t *subnets, *sub;
    size_t j;

    snprintf(path, sizeof path, "networks[%zu]", i);
    if (!json_is_object(net)) {
      finding_add(findings, lines, "error", path, "a network must be a "
                  "mapping with name, cidr and subnets");
      errors++;
      continue;
    }
    errors += check_keys(net, net_keys, path, lines, findings);
    errors += validate_allow(net, path, lines, findings);
    name = str_field(net, "name", path, 1, lines, findings, &errors);
    cidr = str_field(net, "cidr", path, 1, lines, findings, &errors);
    (void)name;
    if (i >= MAX_SUBNETS)
      continue;
    npre[i] = -1;
    if (cidr) {
      char p[300];

      snprintf(p, sizeof p, "%s.cidr", path);
      if (cidr_parse(cidr, &nnet[i], &npre[i]) == -1) {
        finding_add(findings, lines, "error", p, "'%s' is not an IPv4 CIDR "
                    "like 10.0.0.0/16", cidr);
        errors++;
        npre[i] = -1;
      } else if (nnet[i] & ~mask_of(npre[i])) {
        finding_add(findings, lines, "error", p, "%s has host bits set: "
                    "the network is %u.%u.%u.%u/%d", cidr,
                    (nnet[i] & mask_of(npre[i])) >> 24,
                    (nnet[i] & mask_of(npre[i])) >> 16 & 255,
                    (nnet[i] & mask_of(npre[i])) >> 8 & 255,
                    nnet[i] & mask_of(npre[i]) & 255, npre[i]);
        errors++;
      } else {
        for (k = 0; k < i && k < MAX_SUBNETS; k++) {
          int mp = npre[k] < npre[i] ? npre[k] : npre[i];

          if (npre[k] >= 0 &&
              (nnet[k] & mask_of(mp)) == (nnet[i] & mask_of(mp))) {
            finding_add(findings, lines, "error", p, "%s overlaps "
                        "networks[%zu]", cidr, k);
            errors++;
          }
        }
      }
    }
    subnets = json_object_get(net, "subnets");
    if (subnets == NULL || !json_is_array(subnets) ||
        json_array_size(subnets) == 0) {
      char p[300];

      snprintf(p, sizeof p, "%s.subnets", path);
      finding_add(findings, lines, "error", p, "a network needs a list of "
                  "subnets");
      errors++;
      continue;
    }
    json_array_foreach(subnets, j, sub) {
      struct subnet *s;
      const char *sname, *scidr;
      char spath[64], p[400];

      snprintf(spath, sizeof spath, "%s.subnets[%zu]", path, j);
      if (!json_is_object(sub)) {
        finding_add(findings, lines, "error", spath, "a subnet must be a "
                    "mapping with name and cidr");
        errors++;
        continue;
      }
      errors += check_keys(sub, sub_keys, spath, lines, findings);
      sname = str_field(sub, "name", spath, 1, lines, findings, &errors);
      scidr = str_field(sub, "cidr", spath, 1, lines, findings, &errors);
      if (sname == NULL || scidr == NULL || *nsubs == MAX_SUBNETS)
        continue;
      s = &subs[*nsubs];
      s->name = sname;
      snprintf(s->path, sizeof s->path, "%s", spath);
      snprintf(p, sizeof p, "%s.cidr", spath);
      for (k = 0; k < *nsubs; k++)
        if (strcmp(subs[k].name, sname) == 0) {
          char np[400];

          snprintf(np, sizeof np, "%s.name", spath);
          finding_add(findings, lines, "error", np, "subnet name '%s' is "
                      "already used by %s", sname, subs[k].path);
          errors++;
        }
      if (cidr_parse(scidr, &s->net, &s->prefix) == -1) {
        finding_add(findings, lines, "error", p, "'%s' is not an IPv4 CIDR "
                    "like 10.0.1.0/24", scidr);
        errors++;
        continue;
      }
      if (s->net & ~mask_of(s->prefix)) {
        finding_add(findings, lines, "error", p, "%s has host bits set",
                    scidr);
        errors++;
        continue;
      }
      if (i < MAX_SUBNETS && npre[i] >= 0 &&
          (s->prefix < npre[i] ||
           (s->net & mask_of(npre[i])) != nnet[i])) {
        finding_add(findings, lines, "error", p, "subnet %s is not inside "
                    "its network %s", scidr, cidr);
        errors++;
      }
      for (k = 0; k < *nsubs; k++) {
        int mp = subs[k].prefix < s->prefix ? subs[k].prefix : s->prefix;

        if ((subs[k].net & mask_of(mp)) == (s->net & mask_of(mp))) {
          finding_add(findings, lines, "error", p, "subnet %s overlaps "
                      "subnet '%s' (%s)", scidr, subs[k].name,
                      subs[k].path);
          errors++;
        }
      }
      (*nsubs)++;
    }
  }
  return errors;
}

/* Names of a NULL-terminated list, "a, b" into buf ("none" if empty). */
static const char *list_names(const char *const *list, char *buf,
                              size_t size)
{
  size_t i, n = 0;

  snprintf(buf, size, "none");
  for (i = 0; list && list[i] && n < size; i++)
    n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? ", " : "",
                          list[i]);
  return buf;
}

static int in_list(const char *const *list, const char *s)
{
  size_t i;

  for (i = 0; list && list[i]; i++)
    if (strcmp(list[i], s) == 0)
      return 1;
  return 0;
}

static int validate_host(json_t *bp, json_t *h, size_t i,
                         const struct target_ops *prov,
                         const struct subnet *subs, size_t nsubs,
                         struct ip_set *ips, json_t *lines,
                         json_t *findings)
{
  static const char *const host_keys[] = { "name", "machine_type", "subnet",
                                           "ip", "format", "disks", "boot",
                                           "boot_marker", "boot_timeout",
                                           "boot_model", "warm", "quiesce",
                                           "zone", "prepare", NULL };
  const char *name, *subnet, *ip, *format, *mt;
  const struct subnet *sub = NULL;
  json_t *disks, *d;
  char path[32], p[300], fmts[128];
  size_t k;
  int errors = 0;

  snprintf(path, sizeof path, "hosts[%zu]", i);
  if (!json_is_object(h)) {
    finding_add(findings, lines, "error", path, "a host must be a mapping "
                "with at least a name");
    return 1;
  }
  errors += check_keys(h, host_keys, path, lines, findings);
  name = str_field(h, "name", path, 1, lines, findings, &errors);
  mt = str_field(h, "machine_type", path, 0, lines, findings, &errors);
  subnet = str_field(h, "subnet", path, 0, lines, findings, &errors);
  ip = str_field(h, "ip", path, 0, lines, findings, &errors);
  format = str_field(h, "format", path, 0, lines, findings, &errors);
  (void)name;
  if (prov && prov->rules.needs_machine_type && mt == NULL &&
      json_object_get(h, "machine_type") == NULL) {
    snprintf(p, sizeof p, "%s.machine_type", path);
    finding_add(findings, lines, "error", p, "provider %s needs a "
                "machine_type (instance type or size) for each host",
                prov->name);
    errors++;
  }
  if (format && prov && !target_has_format(prov, format)) {
    snprintf(p, sizeof p, "%s.format", path);
    target_formats(prov, fmts, sizeof fmts);
    finding_add(findings, lines, "error", p, "provider %s cannot import "
                "format '%s': use %s", prov->name, format, fmts);
    errors++;
  }
  if (subnet) {
    for (k = 0; k < nsubs; k++)
      if (strcmp(subs[k].name, subnet) == 0)
        sub = &subs[k];
    if (sub == NULL) {
      snprintf(p, sizeof p, "%s.subnet", path);
      finding_add(findings, lines, "error", p, "no subnet named '%s' in "
                  "networks", subnet);
      errors++;
    }
  } else if (nsubs > 0) {
    snprintf(p, sizeof p, "%s.subnet", path);
    finding_add(findings, lines, "error", p, "'subnet' is required when "
                "the blueprint has networks: name one of its subnets");
    errors++;
  }
  if (ip) {
    uint32_t a;

    snprintf(p, sizeof p, "%s.ip", path);
    if (ipv4_parse(ip, &a) == -1) {
      finding_add(findings, lines, "error", p, "'%s' is not an IPv4 "
                  "address", ip);
      errors++;
    } else if (sub == NULL) {
      if (subnet == NULL) {
        finding_add(findings, lines, "error", p, "a static ip needs a "
                    "subnet");
        errors++;
      }
    } else if ((a & mask_of(sub->prefix)) != sub->net) {
      finding_add(findings, lines, "error", p, "%s is outside subnet '%s' "
                  "(%u.%u.%u.%u/%d)", ip, sub->name, sub->net >> 24,
                  sub->net >> 16 & 255, sub->net >> 8 & 255,
                  sub->net & 255, sub->prefix);
      errors++;
    } else if (sub->prefix < 31 &&
               (a == sub->net || a == (sub->net | ~mask_of(sub->prefix)))) {
      finding_add(findings, lines, "error", p, "%s is the %s address of "
                  "subnet '%s'", ip, a == sub->net ? "network" : "broadcast",
                  sub->name);
      errors++;
    } else {
      if (ip_set_add(ips, a)) {
        finding_add(findings, lines, "error", p, "%s is given to another "
                    "host too", ip);
        errors++;
      }
    }
  }
  disks = json_object_get(h, "disks");
  if (disks && !json_is_null(disks)) {
    snprintf(p, sizeof p, "%s.disks", path);
    if (!json_is_array(disks) || json_array_size(disks) == 0) {
      finding_add(findings, lines, "error", p, "'disks' must be a list of "
                  "disk names such as [sda, sdb]");
      errors++;
    } else {
      json_array_foreach(disks, k, d)
        if (!json_is_string(d) || strchr(json_string_value(d), '/') ||
            json_string_length(d) == 0) {
          finding_add(findings, lines, "error", p, "disks[%zu] must be a "
                      "disk name such as sda (no /dev/)", k);
          errors++;
        }
    }
  }
  if (json_object_get(h, "boot_timeout") &&
      (!json_is_integer(json_object_get(h, "boot_timeout")) ||
       json_integer_value(json_object_get(h, "boot_timeout")) < 10)) {
    snprintf(p, sizeof p, "%s.boot_timeout", path);
    finding_add(findings, lines, "error", p, "'boot_timeout' must be a "
                "number of seconds (10 or more)");
    errors++;
  }
  if (json_object_get(h, "boot_marker") &&
      (!json_is_string(json_object_get(h, "boot_marker")) ||
       json_string_length(json_object_get(h, "boot_marker")) == 0)) {
    snprintf(p, sizeof p, "%s.boot_marker", path);
    finding_add(findings, lines, "error", p, "'boot_marker' must be the "
                "text the guest prints on its serial console when up");
    errors++;
  }
  if (json_object_get(h, "boot_model")) {
    const char *bm = json_string_value(json_object_get(h, "boot_model"));
    char models[96];

    snprintf(p, sizeof p, "%s.boot_model", path);
    if (bm == NULL || !in_list(target_local_boot_models, bm)) {
      finding_add(findings, lines, "error", p, "'boot_model' must be one of "
                  "%s (the cloud whose devices the boot check boots on)",
                  list_names(target_local_boot_models, models,
                             sizeof models));
      errors++;
    }
  }
  if ((json_is_true(json_object_get(h, "boot")) ||
       json_object_get(h, "boot_marker") ||
       json_object_get(h, "boot_model")) && prov &&
      strcmp(prov->name, "local") != 0) {
    snprintf(p, sizeof p, "%s.boot", path);
    finding_add(findings, lines, "error", p, "the boot check runs on the "
                "local target only (provider %s boots on its cloud)",
                prov->name);
    errors++;
  }
  {
    static const char *const bools[] = { "boot", "warm", "quiesce",
                                         "prepare" };

    for (k = 0; k < sizeof bools / sizeof bools[0]; k++)
      if (json_object_get(h, bools[k]) &&
          !json_is_boolean(json_object_get(h, bools[k]))) {
        snprintf(p, sizeof p, "%s.%s", path, bools[k]);
        finding_add(findings, lines, "error", p, "'%s' must be true or "
                    "false", bools[k]);
        errors++;
      }
  }
  (void)bp;
  return errors;
}

/* endpoints: (API URLs the driver uses instead of the cloud's own, for
 * private endpoints and tests) and import: (how disks reach the cloud). */
static int validate_target_fields(json_t *bp, const struct target_ops *prov,
                                  json_t *lines, json_t *findings)
{
  json_t *eps = json_object_get(bp, "endpoints"), *v;
  json_t *imp = json_object_get(bp, "import");
  const char *key;
  char names[256], p[300];
  int errors = 0;

  if (eps && !json_is_object(eps)) {
    finding_add(findings, lines, "error", "endpoints", "'endpoints' must be "
                "a mapping of API name to URL (%s for %s)",
                list_names(prov->rules.endpoint_keys, names, sizeof names),
                prov->name);
    errors++;
  } else if (eps) {
    json_object_foreach(eps, key, v) {
      const char *url = json_string_value(v);

      snprintf(p, sizeof p, "endpoints.%s", key);
      if (!in_list(prov->rules.endpoint_keys, key)) {
        finding_add(findings, lines, "error", p, "provider %s has no "
                    "endpoint '%s' (its endpoints: %s)", prov->name, key,
                    list_names(prov->rules.endpoint_keys, names,
                               sizeof names));
        errors++;
      } else if (url == NULL || (strncmp(url, "https://", 8) &&
                                 strncmp(url, "http://", 7)) ||
                 strchr(url, '@') || strchr(url, '?')) {
        finding_add(findings, lines, "error", p, "'%s' must be an http:// "
                    "or https:// URL without credentials or query",
                    url ? url : "(not a string)");
        errors++;
      }
    }
  }
  if (imp && (!json_is_string(imp) ||
              !in_list(prov->rules.imports, json_string_value(imp)))) {
    finding_add(findings, lines, "error", "import", "'import' for %s must "
                "be one of: %s (upload: the driver writes the disk from the "
                "chunked image; object: the cloud imports the converted "
                "object)", prov->name,
                list_names(prov->rules.imports, names, sizeof names));
    errors++;
  }
  return errors;
}

int blueprint_validate(json_t *bp, json_t *lines, json_t *findings)
{
  static const char *const top_keys[] = { "name", "provider", "region",
                                          "store", "networks", "hosts",
                                          "options", "endpoints", "import",
                                          "prepare", NULL };
  static const char *const schemes[] = { "file://", "s3://", "azure://",
                                         "gs://" };
  CLEANUP_FREE struct subnet *subs = NULL;
  CLEANUP_FREE uint32_t *ip_slots = NULL;
  CLEANUP_JSON json_t *names = json_object();  /* host name -> index */
  struct ip_set ips = { NULL, 0 };
  const struct target_ops *prov = NULL;
  const char *name, *provider, *store;
  json_t *hosts, *h, *first;
  size_t nsubs = 0, i, k;
  int errors = 0;

  if (!json_is_object(bp)) {
    finding_add(findings, lines, "error", "", "a blueprint must be a "
                "mapping (name, provider, store, hosts, ...)");
    return 1;
  }
  errors += check_keys(bp, top_keys, "", lines, findings);
  if (json_object_get(bp, "prepare") &&
      !json_is_boolean(json_object_get(bp, "prepare"))) {
    finding_add(findings, lines, "error", "prepare", "'prepare' must be "
                "true (prepare each guest for the target's hardware: the "
                "default) or false (migrate the disks as they are)");
    errors++;
  }
  name = str_field(bp, "name", "", 1, lines, findings, &errors);
  if (name) {
    for (k = 0; name[k]; k++)
      if (!isalnum((unsigned char)name[k]) && !strchr("-_.", name[k]))
        break;
    if (name[k] || k > 64) {
      finding_add(findings, lines, "error", "name", "'%s': use at most 64 "
                  "letters, digits, '-', '_' or '.'", name);
      errors++;
    }
  }
  provider = str_field(bp, "provider", "", 1, lines, findings, &errors);
  if (provider && (prov = target_lookup(provider)) == NULL) {
    finding_add(findings, lines, "error", "provider", "unknown provider "
                "'%s': use one of %s", provider, target_names());
    errors++;
  }
  if (prov && prov->rules.needs_region &&
      str_field(bp, "region", "", 0, lines, findings, &errors) == NULL &&
      json_object_get(bp, "region") == NULL) {
    finding_add(findings, lines, "error", "region", "provider %s needs a "
                "region", prov->name);
    errors++;
  }
  if (prov)
    errors += validate_target_fields(bp, prov, lines, findings);
  store = str_field(bp, "store", "", 1, lines, findings, &errors);
  if (store) {
    for (k = 0; k < sizeof schemes / sizeof schemes[0]; k++)
      if (strncmp(store, schemes[k], strlen(schemes[k])) == 0 &&
          store[strlen(schemes[k])] != '\0')
        break;
    if (k == sizeof schemes / sizeof schemes[0]) {
      finding_add(findings, lines, "error", "store", "'%s' is not a store "
                  "URL: use file:///DIR, s3://BUCKET/PREFIX, "
                  "azure://CONTAINER/PREFIX or gs://BUCKET/PREFIX", store);
      errors++;
    }
  }
  if (json_object_get(bp, "options") &&
      !json_is_object(json_object_get(bp, "options"))) {
    finding_add(findings, lines, "error", "options", "'options' must be a "
                "mapping");
    errors++;
  } else if (json_object_get(bp, "options")) {
    static const char *const opt_keys[] = { "chunk_size", "compress", "jobs",
                                            "max_rate", "sync_interval",
                                            "store_access", NULL };
    json_t *access = json_object_get(json_object_get(bp, "options"),
                                     "store_access");

    errors += check_keys(json_object_get(bp, "options"), opt_keys,
                         "options", lines, findings);
    if (access && (!json_is_string(access) ||
                   (strcmp(json_string_value(access), "grant") &&
                    strcmp(json_string_value(access), "direct")))) {
      finding_add(findings, lines, "error", "options.store_access",
                  "'store_access' must be grant (agents get short-lived "
                  "grants from the server: no cloud credentials on "
                  "sources, the default) or direct (agents use credentials "
                  "of their own)");
      errors++;
    }
    if (json_object_get(json_object_get(bp, "options"), "sync_interval") &&
        blueprint_sync_interval(bp) <= 0) {
      finding_add(findings, lines, "error", "options.sync_interval",
                  "'sync_interval' must be a number of seconds or a "
                  "duration such as 90s, 15m or 1h");
      errors++;
    }
  }
  hosts = json_object_get(bp, "hosts");
  if (names == NULL || (subs = calloc(MAX_SUBNETS, sizeof *subs)) == NULL ||
      ip_set_init(&ips, json_array_size(hosts)) == -1) {
    finding_add(findings, lines, "error", "", "cannot validate: out of "
                "memory");
    return errors + 1;
  }
  ip_slots = ips.slot;
  errors += validate_networks(bp, lines, findings, subs, &nsubs);
  if (!json_is_array(hosts) || json_array_size(hosts) == 0) {
    finding_add(findings, lines, "error", "hosts", "'hosts' must be a list "
                "of at least one host");
    return errors + 1;
  }
  json_array_foreach(hosts, i, h) {
    const char *hn;

    errors += validate_host(bp, h, i, prov, subs, nsubs, &ips, lines,
                            findings);
    hn = json_string_value(json_object_get(h, "name"));
    if (hn == NULL)
      continue;
    if ((first = json_object_get(names, hn)) != NULL) {
      char p[256];

      snprintf(p, sizeof p, "hosts[%zu].name", i);
      finding_add(findings, lines, "error", p, "host '%s' is listed twice "
                  "(also hosts[%" JSON_INTEGER_FORMAT "])", hn,
                  json_integer_value(first));
      errors++;
    } else if (json_object_set_new(names, hn, json_integer((json_int_t)i))
               == -1) {
      finding_add(findings, lines, "error", "hosts", "cannot validate: out "
                  "of memory");
      return errors + 1;
    }
  }
  return errors;
}

int blueprint_check_hosts(json_t *bp, json_t *lines, sqlite3 *db,
                          long long project_id, json_t *findings)
{
  json_t *hosts = json_object_get(bp, "hosts"), *h;
  size_t i;
  int errors = 0;

  json_array_foreach(hosts, i, h) {
    const char *hn = json_string_value(json_object_get(h, "name"));
    char p[256];

    if (hn == NULL)
      continue;
    if (db_int(db, 0, "SELECT count(*) FROM hosts WHERE hostname = ?1 "
               "AND project_id = ?2", "ti", hn, project_id) == 0) {
      snprintf(p, sizeof p, "hosts[%zu].name", i);
      finding_add(findings, lines, "error", p, "host '%s' was never "
                  "discovered: run ferry-agent discover on it first (or "
                  "check the spelling)", hn);
      errors++;
    }
  }
  return errors;
}

json_t *blueprint_host(json_t *bp, const char *hostname)
{
  json_t *hosts = json_object_get(bp, "hosts"), *h;
  size_t i;

  json_array_foreach(hosts, i, h)
    if (json_is_string(json_object_get(h, "name")) &&
        strcmp(json_string_value(json_object_get(h, "name")), hostname) == 0)
      return h;
  return NULL;
}

const char *blueprint_format(json_t *bp, json_t *host)
{
  const char *f = json_string_value(json_object_get(host, "format"));
  const struct target_ops *p;

  if (f)
    return f;
  p = target_lookup(json_string_value(json_object_get(bp, "provider")));
  return p ? p->rules.formats[0] : "raw";
}

long long blueprint_sync_interval(json_t *bp)
{
  json_t *v = json_object_get(json_object_get(bp, "options"),
                              "sync_interval");
  const char *t;
  char *end;
  long long n;

  if (v == NULL)
    return 3600;
  if (json_is_integer(v))
    return json_integer_value(v) > 0 ? json_integer_value(v) : -1;
  t = json_string_value(v);
  if (t == NULL)
    return -1;
  errno = 0;
  n = strtoll(t, &end, 10);
  if (end == t || n <= 0 || errno == ERANGE)
    return -1;
  /* a count of minutes or hours beyond long long is no interval either */
  if (strcmp(end, "s") == 0 || *end == '\0')
    return n;
  if (strcmp(end, "m") == 0)
    return n <= LLONG_MAX / 60 ? n * 60 : -1;
  if (strcmp(end, "h") == 0)
    return n <= LLONG_MAX / 3600 ? n * 3600 : -1;
  return -1;
}
