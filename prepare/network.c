/* network.c - the primary NIC comes up on the target: rules binding
 * interface names to the source's MAC addresses removed, the NIC named as
 * on the source by its new driver (a systemd .link file, so the guest's
 * own configuration keeps applying), and that configuration switched to
 * DHCP (a cloud hands the instance its address by DHCP) or to the
 * blueprint's static address, in the guest's own stack: ifupdown,
 * NetworkManager keyfiles, ifcfg or netplan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prepare.h"
#include "util/cleanup.h"
#include "util/error.h"

/* udev rules and .link files that name NICs by MAC address. */
static int drop_mac_rules(struct prep *x)
{
  char **rules = guestfs_glob_expand(x->g, "/etc/udev/rules.d/*.rules");
  size_t i;
  int r = 0;

  for (i = 0; rules && rules[i] && r == 0; i++) {
    CLEANUP_FREE char *text = gf_read(x, rules[i], NULL);

    if (text == NULL) {
      r = -1;
      break;
    }
    if (strstr(text, "ATTR{address}") == NULL || strstr(text, "NAME") ==
        NULL || strstr(text, "SUBSYSTEM==\"net\"") == NULL)
      continue;
    if (gf_remove(x, rules[i]) == -1) {
      r = -1;
      break;
    }
    prep_change(x, rules[i], "it names NICs by the source's MAC addresses; "
                "the target's NICs have others", "removed (kept in "
                PREP_ORIG_DIR ")");
  }
  gf_free_strings(rules);
  return r;
}

/* ---- finding the primary NIC's name in the guest's configuration ---- */

static char *ifupdown_nic(const char *text)
{
  const char *p = text;

  while (p && *p) {
    char name[64];

    if (sscanf(p, "iface %63s inet", name) == 1 && strcmp(name, "lo") != 0)
      return strdup(name);
    p = strchr(p, '\n');
    if (p)
      p++;
  }
  return NULL;
}

/* key's value in an INI/keyfile/ifcfg text, into out; 1 if found. */
static int kv_get(const char *text, const char *key, char *out, size_t cap)
{
  size_t k = strlen(key);
  const char *p = text;

  while (p && *p) {
    if (strncmp(p, key, k) == 0 && p[k] == '=') {
      size_t n = strcspn(p + k + 1, "\n");

      if (n >= 2 && p[k + 1] == '"' && p[k + n] == '"')
        snprintf(out, cap, "%.*s", (int)(n - 2), p + k + 2);
      else
        snprintf(out, cap, "%.*s", (int)n, p + k + 1);
      return 1;
    }
    p = strchr(p, '\n');
    if (p)
      p++;
  }
  return 0;
}

/* ---- ifupdown ---- */

static int is_stanza(const char *line)
{
  static const char *const words[] = { "iface ", "auto ", "allow-",
                                       "mapping ", "source ", "source-",
                                       "rename ", NULL };
  size_t i;

  for (i = 0; words[i]; i++)
    if (strncmp(line, words[i], strlen(words[i])) == 0)
      return 1;
  return 0;
}

static int ifupdown(struct prep *x, const char *path)
{
  static const char *const dhcp[] = {
    "/sbin/dhclient", "/usr/sbin/dhclient", "/sbin/dhcpcd",
    "/usr/sbin/dhcpcd", "/sbin/udhcpc", "/usr/sbin/udhcpc",
    "/usr/sbin/dhcpcd5", NULL };
  CLEANUP_FREE char *text = gf_read(x, path, NULL), *out = NULL;
  char head[128], *line, *save = NULL;
  size_t outlen = 0;
  int in_primary = 0, changed = 0, has_auto = 0;
  FILE *o;

  if (text == NULL)
    return -1;
  if (x->net.ip == NULL && gf_which(x, dhcp) == NULL) {
    ferry_error("%s: the primary NIC must use DHCP on %s but the guest has "
                "no DHCP client (dhclient, dhcpcd, udhcpc): install "
                "isc-dhcp-client on the source and sync again", path,
                x->p->name);
    return -1;
  }
  snprintf(head, sizeof head, "iface %s inet ", x->nic);
  if ((o = open_memstream(&out, &outlen)) == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  for (line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    const char *t = line + strspn(line, " \t");
    char w1[32], w2[64];

    if (sscanf(t, "%31s %63s", w1, w2) == 2 && strcmp(w2, x->nic) == 0 &&
        (strcmp(w1, "auto") == 0 || strncmp(w1, "allow-", 6) == 0))
      has_auto = 1;
    if (in_primary && !is_stanza(t))
      continue;                 /* the old stanza's options */
    in_primary = 0;
    if (strncmp(t, head, strlen(head)) == 0) {
      in_primary = 1;
      if (x->net.ip)
        fprintf(o, "iface %s inet static\n    address %s\n%s%s%s", x->nic,
                x->net.ip, x->net.gateway ? "    gateway " : "",
                x->net.gateway ? x->net.gateway : "",
                x->net.gateway ? "\n" : "");
      else
        fprintf(o, "iface %s inet dhcp\n", x->nic);
      changed = 1;
      continue;
    }
    fprintf(o, "%s\n", line);
  }
  if (!has_auto)
    fprintf(o, "allow-hotplug %s\n", x->nic);
  fclose(o);
  if (!changed) {
    ferry_error("%s has no 'iface %s inet' stanza for the primary NIC", path,
                x->nic);
    return -1;
  }
  if (gf_write(x, path, out) == -1)
    return -1;
  prep_change(x, path, x->net.ip ? "the blueprint gives the host this "
              "address" : "the target's network hands out the instance's "
              "address by DHCP; the source's static address is not its "
              "network", "%s: %s%s", x->nic, x->net.ip ? "static " : "DHCP",
              x->net.ip ? x->net.ip : "");
  return 0;
}

/* ---- NetworkManager keyfiles and ifcfg files: line edits ---- */

/* Rewrite a keyfile: drop keys in drop (in any section), set
 * [ipv4] method; add interface-name to [connection]. */
static int keyfile(struct prep *x, const char *path)
{
  CLEANUP_FREE char *text = gf_read(x, path, NULL), *out = NULL;
  char type[64] = "", name[64], *line, *save = NULL, section[64] = "";
  size_t outlen = 0;
  FILE *o;

  if (text == NULL)
    return -1;
  kv_get(text, "type", type, sizeof type);
  if (strcmp(type, "ethernet") != 0 && strcmp(type, "802-3-ethernet") != 0)
    return 0;
  /* the primary's profile: its name, or a profile bound to no name (by
   * MAC address, or any NIC) */
  if (kv_get(text, "interface-name", name, sizeof name) &&
      strcmp(name, x->nic) != 0)
    return 0;
  if ((o = open_memstream(&out, &outlen)) == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  for (line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    if (line[0] == '[') {
      snprintf(section, sizeof section, "%s", line);
      fprintf(o, "%s\n", line);
      if (strcmp(section, "[connection]") == 0)
        fprintf(o, "interface-name=%s\n", x->nic);
      if (strcmp(section, "[ipv4]") == 0) {
        if (x->net.ip)
          fprintf(o, "method=manual\naddress1=%s%s%s\n", x->net.ip,
                  x->net.gateway ? "," : "",
                  x->net.gateway ? x->net.gateway : "");
        else
          fprintf(o, "method=auto\n");
      }
      continue;
    }
    if (strncmp(line, "mac-address=", 12) == 0 ||
        strncmp(line, "interface-name=", 15) == 0 ||
        (strcmp(section, "[ipv4]") == 0 &&
         (strncmp(line, "method=", 7) == 0 ||
          strncmp(line, "address", 7) == 0 ||
          strncmp(line, "gateway=", 8) == 0 ||
         (x->net.ip == NULL && (strncmp(line, "dns=", 4) == 0 ||
                                strncmp(line, "ignore-auto-dns=", 16) == 0)))))
      continue;
    fprintf(o, "%s\n", line);
  }
  fclose(o);
  if (gf_write(x, path, out) == -1)
    return -1;
  prep_change(x, path, "the profile was bound to the source's NIC (MAC "
              "address, static address); the target's NIC differs",
              "interface-name=%s, no mac-address, ipv4 %s", x->nic,
              x->net.ip ? x->net.ip : "method=auto (DHCP)");
  return 0;
}

static int ifcfg(struct prep *x, const char *path)
{
  static const char *const drop[] = { "HWADDR=", "MACADDR=", "IPADDR",
                                      "PREFIX", "NETMASK", "GATEWAY",
                                      "BOOTPROTO=", "DEVICE=", "ONBOOT=",
                                      NULL };
  CLEANUP_FREE char *text = gf_read(x, path, NULL), *out = NULL;
  char *line, *save = NULL;
  size_t outlen = 0, i;
  FILE *o;

  if (text == NULL)
    return -1;
  if ((o = open_memstream(&out, &outlen)) == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  for (line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    for (i = 0; drop[i]; i++)
      if (strncmp(line, drop[i], strlen(drop[i])) == 0)
        break;
    if (drop[i] == NULL)
      fprintf(o, "%s\n", line);
  }
  fprintf(o, "DEVICE=%s\nONBOOT=yes\n", x->nic);
  if (x->net.ip) {
    char ip[64];
    char *slash;

    snprintf(ip, sizeof ip, "%s", x->net.ip);
    slash = strchr(ip, '/');
    if (slash)
      *slash++ = 0;
    fprintf(o, "BOOTPROTO=none\nIPADDR=%s\n", ip);
    if (slash)
      fprintf(o, "PREFIX=%s\n", slash);
    if (x->net.gateway)
      fprintf(o, "GATEWAY=%s\n", x->net.gateway);
  } else {
    fprintf(o, "BOOTPROTO=dhcp\n");
  }
  fclose(o);
  if (gf_write(x, path, out) == -1)
    return -1;
  prep_change(x, path, "the profile was bound to the source's NIC",
              "DEVICE=%s, no HWADDR, %s", x->nic,
              x->net.ip ? "static" : "BOOTPROTO=dhcp");
  return 0;
}

/* netplan: a single primary ethernet is replaced by ferry's own file;
 * anything richer (bonds, bridges, VLANs) is left to the operator. */
static int netplan(struct prep *x, char **files)
{
  static const char *const rich[] = { "bonds:", "bridges:", "vlans:",
                                      "wifis:", "tunnels:", NULL };
  const char *const *d;
  char body[2048];
  size_t i, k, len;

  for (i = 0; files[i]; i++) {
    CLEANUP_FREE char *text = gf_read(x, files[i], NULL);

    if (text == NULL)
      return -1;
    for (k = 0; rich[k]; k++)
      if (strstr(text, rich[k])) {
        ferry_error("%s defines %s: ferry rewrites only a plain ethernet "
                    "netplan configuration; make the primary NIC use DHCP "
                    "without a MAC match on the source, or set prepare: "
                    "false and prepare the network yourself", files[i],
                    rich[k]);
        return -1;
      }
  }
  len = (size_t)snprintf(body, sizeof body, "# ferry: the primary NIC on "
                         "%s\nnetwork:\n  version: 2\n  ethernets:\n    "
                         "%s:\n      match:\n        driver: \"", x->p->name,
                         x->nic);
  for (d = x->nic_drivers; *d && len < sizeof body; d++)
    len += (size_t)snprintf(body + len, sizeof body - len, "%s%s",
                            d == x->nic_drivers ? "" : " ", *d);
  if (len < sizeof body)
    len += (size_t)snprintf(body + len, sizeof body - len, "\"\n      "
                            "set-name: %s\n", x->nic);
  if (len < sizeof body && x->net.ip)
    snprintf(body + len, sizeof body - len, "      addresses: [%s]\n"
             "%s%s%s", x->net.ip, x->net.gateway ? "      routes:\n"
             "        - to: default\n          via: " : "",
             x->net.gateway ? x->net.gateway : "",
             x->net.gateway ? "\n" : "");
  else if (len < sizeof body)
    snprintf(body + len, sizeof body - len, "      dhcp4: true\n");
  for (i = 0; files[i]; i++) {
    if (gf_remove(x, files[i]) == -1)
      return -1;
    prep_change(x, files[i], "replaced by ferry's netplan file for the "
                "target's NIC", "removed (kept in " PREP_ORIG_DIR ")");
  }
  if (gf_write(x, "/etc/netplan/50-ferry.yaml", body) == -1 ||
      guestfs_chmod(x->g, 0600, "/etc/netplan/50-ferry.yaml") == -1)
    return -1;
  prep_change(x, "/etc/netplan/50-ferry.yaml", "the target's NIC, matched "
              "by driver, gets the source's name and its address",
              "%s by driver, %s", x->nic, x->net.ip ? x->net.ip : "DHCP");
  return 0;
}

/* The .link file naming the target's NIC as the source named it. */
static int link_file(struct prep *x)
{
  static const char *const path = "/etc/systemd/network/10-ferry-primary.link";
  char body[1024];
  const char *const *d;
  size_t len;

  if (guestfs_is_dir(x->g, "/etc/systemd") != 1)
    return 0;                   /* no systemd-udevd: no .link files */
  len = (size_t)snprintf(body, sizeof body, "# ferry: the primary NIC on "
                         "%s keeps the source's name\n[Match]\nType=ether\n"
                         "Driver=", x->p->name);
  for (d = x->nic_drivers; *d && len < sizeof body; d++)
    len += (size_t)snprintf(body + len, sizeof body - len, "%s%s",
                            d == x->nic_drivers ? "" : " ", *d);
  if (len < sizeof body)
    snprintf(body + len, sizeof body - len, "\n\n[Link]\nName=%s\n",
             x->nic);
  if (guestfs_mkdir_p(x->g, "/etc/systemd/network") == -1 ||
      gf_write(x, path, body) == -1)
    return -1;
  prep_change(x, path, "the guest's network configuration names the NIC as "
              "the source did; on new hardware the kernel would name it "
              "after its new bus position", "%s NICs are named %s",
              x->p->name, x->nic);
  x->rebuild_initramfs = 1;     /* udev in the initramfs names NICs too */
  return 0;
}

int prep_network(struct prep *x)
{
  char **nm = NULL, **cfgs = NULL, **plans = NULL;
  CLEANUP_FREE char *ifaces = NULL;
  char buf[128];
  size_t i;
  int r = -1;

  if (drop_mac_rules(x) == -1)
    return -1;
  nm = guestfs_glob_expand(x->g, "/etc/NetworkManager/system-connections/*");
  cfgs = guestfs_glob_expand(x->g,
                             "/etc/sysconfig/network-scripts/ifcfg-*");
  plans = guestfs_glob_expand(x->g, "/etc/netplan/*.yaml");
  if (gf_is_file(x, "/etc/network/interfaces") &&
      (ifaces = gf_read(x, "/etc/network/interfaces", NULL)) == NULL)
    goto out;
  /* the primary NIC's name: the inventory's, else the configuration's */
  if (x->net.nic)
    x->nic = strdup(x->net.nic);
  if (x->nic == NULL && ifaces)
    x->nic = ifupdown_nic(ifaces);
  for (i = 0; x->nic == NULL && nm && nm[i]; i++) {
    CLEANUP_FREE char *t = gf_read(x, nm[i], NULL);

    if (t && kv_get(t, "interface-name", buf, sizeof buf))
      x->nic = strdup(buf);
  }
  for (i = 0; x->nic == NULL && cfgs && cfgs[i]; i++) {
    CLEANUP_FREE char *t = strstr(cfgs[i], "ifcfg-lo") ? NULL
                           : gf_read(x, cfgs[i], NULL);

    if (t && kv_get(t, "DEVICE", buf, sizeof buf))
      x->nic = strdup(buf);
  }
  if (x->nic == NULL) {
    if (nm && nm[0] == NULL && cfgs && cfgs[0] == NULL && plans &&
        plans[0] == NULL && ifaces == NULL) {
      prep_note(x, "no network configuration found (ifupdown, "
                "NetworkManager, ifcfg, netplan): the NICs are left to the "
                "guest's defaults");
      r = 0;
    } else {
      ferry_error("cannot tell the primary NIC's name from the guest's "
                  "network configuration: name it in the inventory");
    }
    goto out;
  }
  json_object_set_new(x->os, "nic", json_string(x->nic));
  if (link_file(x) == -1)
    goto out;
  if (ifaces && strstr(ifaces, "iface ") && strstr(ifaces, x->nic) &&
      ifupdown(x, "/etc/network/interfaces") == -1)
    goto out;
  for (i = 0; nm && nm[i]; i++)
    if (keyfile(x, nm[i]) == -1)
      goto out;
  for (i = 0; cfgs && cfgs[i]; i++) {
    CLEANUP_FREE char *t = NULL;

    if (strstr(cfgs[i], "ifcfg-lo"))
      continue;
    if ((t = gf_read(x, cfgs[i], NULL)) == NULL)
      goto out;
    if (!kv_get(t, "DEVICE", buf, sizeof buf) || strcmp(buf, x->nic) != 0)
      continue;                 /* another NIC's */
    if (ifcfg(x, cfgs[i]) == -1)
      goto out;
  }
  if (plans && plans[0] && netplan(x, plans) == -1)
    goto out;
  r = 0;
out:
  gf_free_strings(nm);
  gf_free_strings(cfgs);
  gf_free_strings(plans);
  return r;
}
