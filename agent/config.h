/* config.h - the agent's configuration, /etc/ferry/agent.conf:
 *
 *   server = https://ferry.example:8700
 *   server_ca_sha256 = sha256:3f1c...   # the CA the server's cert chains to
 *   enroll_token_file = /etc/ferry/enroll.token
 *   token_file = /var/lib/ferry/agent.token
 *   disk.sda = /dev/sda          # source of a disk (default /dev/NAME)
 *   bitmap.sda = cbt0            # NBD dirty bitmap of an nbd:// source
 *   jobs = 4
 *
 * Secrets are never in this file: it names the files (mode 0600) that
 * hold them. */
#ifndef FERRY_AGENT_CONFIG_H
#define FERRY_AGENT_CONFIG_H

#define AGENT_CONF_DEFAULT "/etc/ferry/agent.conf"

struct agent_config {
  char *path;                  /* where it was read from, or NULL */
  char *server;
  char *server_ca_sha256;      /* pin of the server's CA ("sha256:hex") */
  char *server_ca_file;        /* where that CA is kept, or the operator's
                                  CA when no pin is set */
  int server_ca_system;        /* trust the system's CAs (no pin) */
  char *enroll_token_file;
  char *token_file;
  char *root;                  /* discovery root, default / */
  char *disks[32][2];          /* disk name -> source path */
  int n_disks;
  char *bitmaps[32][2];        /* disk name -> NBD dirty bitmap */
  int n_bitmaps;
  unsigned jobs;
  unsigned chunk_size;
  char *compress;
  char *max_rate;
  unsigned poll_wait;
  char *metrics_listen;        /* "127.0.0.1:9464": GET /metrics; NULL: off */
};

/* Defaults, then path if given (or AGENT_CONF_DEFAULT when it exists).
 * -1 with an error naming the file and line. */
int config_load(struct agent_config *c, const char *path);
void config_free(struct agent_config *c);

/* Where the server's CA certificate is kept: server_ca_file, else
 * server-ca.pem beside the token file.  Caller frees; NULL on OOM. */
char *config_server_ca_path(const struct agent_config *c);

/* Source path for disk name (allocated). */
char *config_disk_source(const struct agent_config *c, const char *name);
/* Dirty bitmap for disk name, or NULL. */
const char *config_disk_bitmap(const struct agent_config *c,
                               const char *name);

#endif
