/* image/image.c - manifest, chunk table and image digest (docs/FORMAT.md). */
#include "image/image.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "store/store.h"

void cleanup_json(void *ptr)
{
  json_decref(*(json_t **)ptr);
}

uint64_t image_chunk_len(const struct image_manifest *m, uint64_t index)
{
  uint64_t off = index * m->chunk_size;

  if (off >= m->disk_size)
    return 0;
  return m->disk_size - off < m->chunk_size ? m->disk_size - off
                                            : m->chunk_size;
}

void image_chunk_key(const uint8_t digest[DIGEST_LEN],
                     enum chunk_encoding enc, char *key)
{
  char hex[DIGEST_HEX_LEN + 1];

  digest_to_hex(digest, hex);
  snprintf(key, IMAGE_CHUNK_KEY_MAX, "chunks/%s%s", hex, codec_suffix(enc));
}

/* Zero-chunk digests, remembered per length: a disk has at most two
 * (full chunks and the tail), a process sees few chunk sizes. */
#define ZERO_CACHE 8
static struct {
  uint64_t len;
  uint8_t digest[DIGEST_LEN];
} zero_cache[ZERO_CACHE];
static size_t zero_cached;
static pthread_mutex_t zero_lock = PTHREAD_MUTEX_INITIALIZER;

int image_zero_digest(uint64_t len, uint8_t out[DIGEST_LEN])
{
  void *zeros;
  size_t i;

  pthread_mutex_lock(&zero_lock);
  for (i = 0; i < zero_cached; i++)
    if (zero_cache[i].len == len) {
      memcpy(out, zero_cache[i].digest, DIGEST_LEN);
      pthread_mutex_unlock(&zero_lock);
      return 0;
    }
  zeros = calloc(1, len ? (size_t)len : 1);
  if (zeros == NULL) {
    pthread_mutex_unlock(&zero_lock);
    ferry_error("out of memory");
    return -1;
  }
  digest_buf(zeros, (size_t)len, out);
  free(zeros);
  i = zero_cached < ZERO_CACHE ? zero_cached++ : 0;
  zero_cache[i].len = len;
  memcpy(zero_cache[i].digest, out, DIGEST_LEN);
  pthread_mutex_unlock(&zero_lock);
  return 0;
}

/* ---- manifest ---------------------------------------------------------- */

static int get_u64(json_t *obj, const char *field, const char *where,
                   uint64_t *out)
{
  json_t *v = json_object_get(obj, field);

  if (v == NULL) {
    ferry_error("%s: field '%s' is missing: the manifest is damaged; clone "
                "the disk again", where, field);
    return -1;
  }
  if (!json_is_integer(v) || json_integer_value(v) < 0) {
    ferry_error("%s: field '%s' must be a non-negative integer: the manifest "
                "is damaged; clone the disk again", where, field);
    return -1;
  }
  *out = (uint64_t)json_integer_value(v);
  return 0;
}

static int get_digest(json_t *obj, const char *field, const char *where,
                      uint8_t out[DIGEST_LEN])
{
  json_t *v = json_object_get(obj, field);

  if (v == NULL || !json_is_string(v) ||
      digest_from_hex(json_string_value(v), out) == -1) {
    ferry_error("%s: field '%s' must be 64 lower-case hex digits (SHA-256): "
                "the manifest is damaged; clone the disk again", where,
                field);
    return -1;
  }
  return 0;
}

/* The optional fields of a prepared generation (FORMAT.md): absent in
 * what clones and syncs write. */
static int parse_prepared(json_t *root, const char *where,
                          struct image_manifest *m)
{
  json_t *from = json_object_get(root, "prepared_from");
  json_t *for_ = json_object_get(root, "prepared_for");
  const char *name;
  size_t len, i;

  if (from == NULL && for_ == NULL)
    return 0;
  if (from == NULL) {
    ferry_error("%s: field 'prepared_for' without 'prepared_from': the "
                "manifest is damaged", where);
    return -1;
  }
  if (get_u64(root, "prepared_from", where, &m->prepared_from) == -1)
    return -1;
  if (m->prepared_from == 0 || m->prepared_from >= m->generation) {
    ferry_error("%s: field 'prepared_from' (%" PRIu64 ") must name an "
                "earlier generation than %" PRIu64 ": the manifest is "
                "damaged", where, m->prepared_from, m->generation);
    return -1;
  }
  if (for_ == NULL)
    return 0;
  name = json_is_string(for_) ? json_string_value(for_) : NULL;
  len = name ? json_string_length(for_) : 0;
  for (i = 0; name && i < len; i++)
    if (!(name[i] >= 'a' && name[i] <= 'z') &&
        !(name[i] >= 'A' && name[i] <= 'Z') &&
        !(name[i] >= '0' && name[i] <= '9') && name[i] != '.' &&
        name[i] != '_' && name[i] != '-')
      break;
  if (name == NULL || len == 0 || len >= IMAGE_PREPARED_FOR_MAX || i < len) {
    ferry_error("%s: field 'prepared_for' must be 1 to %d of A-Z a-z 0-9 "
                ". _ -: the manifest is damaged", where,
                IMAGE_PREPARED_FOR_MAX - 1);
    return -1;
  }
  memcpy(m->prepared_for, name, len + 1);
  return 0;
}

int image_manifest_parse(const char *text, size_t len, const char *where,
                         struct image_manifest *m)
{
  CLEANUP_JSON json_t *root = NULL;
  json_error_t jerr;
  json_t *v, *table;
  uint64_t version, chunk_size, table_size;
  const char *key;

  memset(m, 0, sizeof *m);
  root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (root == NULL) {
    ferry_error("%s: not valid JSON (line %d: %s): the manifest is damaged; "
                "clone the disk again", where, jerr.line, jerr.text);
    return -1;
  }
  if (!json_is_object(root)) {
    ferry_error("%s: not a JSON object: not a ferry manifest", where);
    return -1;
  }
  v = json_object_get(root, "format");
  if (!json_is_string(v) ||
      strcmp(json_string_value(v), IMAGE_FORMAT_NAME) != 0) {
    ferry_error("%s: field 'format' is not \"" IMAGE_FORMAT_NAME "\": not a "
                "ferry chunked image", where);
    return -1;
  }
  if (get_u64(root, "version", where, &version) == -1)
    return -1;
  if (version != IMAGE_VERSION) {
    ferry_error("%s: image format version %" PRIu64 " is not one this ferry "
                "reads (version %d)%s", where, version, IMAGE_VERSION,
                version > IMAGE_VERSION ? ": upgrade ferry" : "");
    return -1;
  }
  m->version = (uint32_t)version;
  v = json_object_get(root, "hash");
  if (!json_is_string(v) || strcmp(json_string_value(v), "sha256") != 0) {
    ferry_error("%s: field 'hash' must be \"sha256\"", where);
    return -1;
  }
  if (get_u64(root, "disk_size", where, &m->disk_size) == -1 ||
      get_u64(root, "chunk_size", where, &chunk_size) == -1 ||
      get_u64(root, "chunk_count", where, &m->chunk_count) == -1 ||
      get_u64(root, "generation", where, &m->generation) == -1 ||
      get_u64(root, "data_chunks", where, &m->data_chunks) == -1 ||
      get_u64(root, "data_bytes", where, &m->data_bytes) == -1 ||
      get_u64(root, "stored_bytes", where, &m->stored_bytes) == -1 ||
      get_digest(root, "image_digest", where, m->image_digest) == -1)
    return -1;
  if (chunk_size < IMAGE_CHUNK_MIN || chunk_size > IMAGE_CHUNK_MAX ||
      (chunk_size & (chunk_size - 1)) != 0) {
    ferry_error("%s: chunk_size %" PRIu64 " is not a power of two between "
                "1 MiB and 64 MiB", where, chunk_size);
    return -1;
  }
  m->chunk_size = (uint32_t)chunk_size;
  if (m->disk_size > (UINT64_C(1) << 60) ||
      m->chunk_count != (m->disk_size + chunk_size - 1) / chunk_size) {
    ferry_error("%s: chunk_count %" PRIu64 " does not match disk_size %"
                PRIu64 " in chunks of %" PRIu64, where, m->chunk_count,
                m->disk_size, chunk_size);
    return -1;
  }
  if (m->data_chunks > m->chunk_count || m->data_bytes > m->disk_size ||
      m->generation == 0) {
    ferry_error("%s: data_chunks, data_bytes or generation out of range",
                where);
    return -1;
  }
  table = json_object_get(root, "table");
  if (!json_is_object(table)) {
    ferry_error("%s: field 'table' must be an object", where);
    return -1;
  }
  v = json_object_get(table, "key");
  key = json_is_string(v) ? json_string_value(v) : NULL;
  if (key == NULL || strncmp(key, "tables/", 7) != 0 ||
      strlen(key) >= sizeof m->table_key || strstr(key, "..") != NULL) {
    ferry_error("%s: field 'table.key' must name an object under tables/",
                where);
    return -1;
  }
  memcpy(m->table_key, key, strlen(key) + 1);
  if (get_digest(table, "digest", "manifest table", m->table_digest) == -1 ||
      get_u64(table, "size", "manifest table", &table_size) == -1)
    return -1;
  m->table_size = table_size;
  return parse_prepared(root, where, m);
}

char *image_manifest_format(const struct image_manifest *m)
{
  CLEANUP_JSON json_t *root = NULL;
  char image_hex[DIGEST_HEX_LEN + 1], table_hex[DIGEST_HEX_LEN + 1];
  char *text;

  digest_to_hex(m->image_digest, image_hex);
  digest_to_hex(m->table_digest, table_hex);
  root = json_pack(
    "{s:s, s:i, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s,"
    " s:{s:s, s:s, s:I}}",
    "format", IMAGE_FORMAT_NAME, "version", IMAGE_VERSION, "hash", "sha256",
    "disk_size", (json_int_t)m->disk_size,
    "chunk_size", (json_int_t)m->chunk_size,
    "chunk_count", (json_int_t)m->chunk_count,
    "generation", (json_int_t)m->generation,
    "data_chunks", (json_int_t)m->data_chunks,
    "data_bytes", (json_int_t)m->data_bytes,
    "stored_bytes", (json_int_t)m->stored_bytes,
    "image_digest", image_hex,
    "table", "key", m->table_key, "digest", table_hex,
    "size", (json_int_t)m->table_size);
  if (root == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  /* only a prepared generation has these: a clone's manifest is as before */
  if ((m->prepared_from &&
       json_object_set_new(root, "prepared_from",
                           json_integer((json_int_t)m->prepared_from))
         == -1) ||
      (m->prepared_from && m->prepared_for[0] &&
       json_object_set_new(root, "prepared_for",
                           json_string(m->prepared_for)) == -1)) {
    ferry_error("out of memory");
    return NULL;
  }
  text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if (text == NULL)
    ferry_error("out of memory");
  return text;
}

int image_manifest_load(struct store *s, struct image_manifest *m)
{
  CLEANUP_FREE char *text = NULL;
  CLEANUP_FREE char *where = NULL;
  size_t len;

  if (store_get_all(s, IMAGE_MANIFEST_KEY, IMAGE_MANIFEST_MAX, &text,
                    &len) == -1) {
    if (errno == ENOENT) {
      ferry_error("no image at %s (manifest.json is missing): the clone "
                  "never ran there or did not finish; run ferry-agent clone "
                  "again", store_url(s));
      errno = ENOENT;
    }
    return -1;
  }
  if (asprintf(&where, "%s/" IMAGE_MANIFEST_KEY, store_url(s)) == -1) {
    ferry_error("out of memory");
    return -1;
  }
  if (image_manifest_parse(text, len, where, m) == -1) {
    errno = EBADMSG;
    return -1;
  }
  return 0;
}

int image_manifest_load_generation(struct store *s, uint64_t generation,
                                   struct image_manifest *m)
{
  CLEANUP_FREE char *text = NULL, *where = NULL;
  char key[64];
  size_t len;

  snprintf(key, sizeof key, "generations/%06" PRIu64 ".json", generation);
  if (store_get_all(s, key, IMAGE_MANIFEST_MAX, &text, &len) == -1) {
    if (errno == ENOENT) {
      ferry_error("the image at %s has no generation %" PRIu64 " (%s is "
                  "missing)", store_url(s), generation, key);
      errno = ENOENT;
    }
    return -1;
  }
  if (asprintf(&where, "%s/%s", store_url(s), key) == -1) {
    ferry_error("out of memory");
    return -1;
  }
  if (image_manifest_parse(text, len, where, m) == -1) {
    errno = EBADMSG;
    return -1;
  }
  if (m->generation != generation) {
    ferry_error("%s says it is generation %" PRIu64 ": the image is "
                "damaged", where, m->generation);
    errno = EBADMSG;
    return -1;
  }
  return 0;
}

static int max_generation(void *opaque, const char *key, uint64_t size)
{
  uint64_t *g = opaque;
  unsigned long long n;
  int used = 0;

  (void)size;
  if (sscanf(key, "generations/%llu.json%n", &n, &used) == 1 &&
      key[used] == '\0' && n > *g)
    *g = n;
  return 0;
}

int image_last_generation(struct store *s, uint64_t *generation)
{
  *generation = 0;
  return store_list(s, "generations/", max_generation, generation);
}

int image_manifest_commit(struct store *s, const struct image_manifest *m)
{
  CLEANUP_FREE char *text = image_manifest_format(m);
  char key[64];
  size_t len;

  if (text == NULL)
    return -1;
  len = strlen(text);
  text[len++] = '\n';   /* replaces the NUL: text is not a string below */
  if (store_flush(s) == -1)
    return -1;
  snprintf(key, sizeof key, "generations/%06" PRIu64 ".json", m->generation);
  if (store_put(s, key, text, len) == -1 ||
      store_put(s, IMAGE_MANIFEST_KEY, text, len) == -1)
    return -1;
  return store_flush(s);
}

/* ---- image digest ------------------------------------------------------ */

struct image_digest {
  struct digest_ctx *ctx;
  uint64_t next;                       /* next index to account for */
  uint64_t chunk_count;
  uint64_t last_index;                 /* chunk_count - 1 */
  uint8_t zero_full[DIGEST_LEN];
  uint8_t zero_last[DIGEST_LEN];
};

struct image_digest *image_digest_create(const struct image_manifest *m)
{
  struct image_digest *d = calloc(1, sizeof *d);

  if (d == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  d->ctx = digest_create();
  d->chunk_count = m->chunk_count;
  d->last_index = m->chunk_count ? m->chunk_count - 1 : 0;
  if (d->ctx == NULL ||
      image_zero_digest(m->chunk_size, d->zero_full) == -1 ||
      image_zero_digest(image_chunk_len(m, d->last_index), d->zero_last)
        == -1) {
    image_digest_close(d);
    return NULL;
  }
  return d;
}

static void digest_zeros_until(struct image_digest *d, uint64_t index)
{
  for (; d->next < index; d->next++)
    digest_update(d->ctx, d->next == d->last_index ? d->zero_last
                                                   : d->zero_full,
                  DIGEST_LEN);
}

int image_digest_add(struct image_digest *d, uint64_t index,
                     const uint8_t digest[DIGEST_LEN])
{
  if (index < d->next || index >= d->chunk_count) {
    ferry_error("chunk %" PRIu64 " out of order or beyond the disk", index);
    return -1;
  }
  digest_zeros_until(d, index);
  digest_update(d->ctx, digest, DIGEST_LEN);
  d->next = index + 1;
  return 0;
}

int image_digest_final(struct image_digest *d, uint8_t out[DIGEST_LEN])
{
  digest_zeros_until(d, d->chunk_count);
  digest_final(d->ctx, out);
  return 0;
}

void image_digest_close(struct image_digest *d)
{
  if (d == NULL)
    return;
  digest_close(d->ctx);
  free(d);
}

/* ---- chunk table ------------------------------------------------------- */

/* index, space, 64 hex, space, encoding, space, size, newline */
#define TABLE_LINE_MAX 128

int image_table_parse_line(const char *line, const struct image_manifest *m,
                           struct image_chunk *c)
{
  char hex[DIGEST_HEX_LEN + 1], enc[8];
  unsigned long long index, size;
  int n = 0;
  uint64_t plain;

  if (sscanf(line, "%20llu %64[0-9a-f] %7[a-z] %20llu%n", &index, hex, enc,
             &size, &n) != 4 || line[n] != '\0' || line[0] == '-' ||
      strchr(line, '-') != NULL) {
    ferry_error("malformed entry");
    return -1;
  }
  if (digest_from_hex(hex, c->digest) == -1 ||
      codec_parse(enc, &c->enc) == -1) {
    ferry_error("malformed entry");
    return -1;
  }
  if (index >= m->chunk_count) {
    ferry_error("chunk %llu is beyond the disk (%" PRIu64 " chunks)", index,
                m->chunk_count);
    return -1;
  }
  plain = image_chunk_len(m, index);
  if (size == 0 || (c->enc == ENC_RAW && size != plain) || size > plain) {
    ferry_error("chunk %llu has an impossible stored size %llu", index, size);
    return -1;
  }
  c->index = index;
  c->stored_size = size;
  return 0;
}

/* The table is kept in memory up to this size, then spilled to an
 * unlinked temporary file: small tables need no disk at all (a final sync
 * may run with the root filesystem frozen), and huge ones no memory. */
#define TABLE_MEM_MAX (32u << 20)

struct table_writer {
  char *mem;                            /* the table while small */
  size_t mem_len, mem_cap;
  FILE *fp;                             /* after spilling */
  struct digest_ctx *ctx;
  struct image_digest *image;
  uint64_t size, count, data_bytes, stored_bytes;
  uint64_t next;                        /* lowest index allowed next */
  const struct image_manifest *m;
};

struct table_writer *table_writer_create(const struct image_manifest *m)
{
  struct table_writer *w = calloc(1, sizeof *w);

  if (w == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  w->m = m;
  w->ctx = digest_create();
  w->image = image_digest_create(m);
  if (w->ctx == NULL || w->image == NULL) {
    table_writer_close(w);
    ferry_error("out of memory");
    return NULL;
  }
  return w;
}

static int table_spill(struct table_writer *w)
{
  const char *dir = getenv("TMPDIR");
  CLEANUP_FREE char *path = NULL;
  int fd;

  if (asprintf(&path, "%s/ferry-table-XXXXXX", dir && *dir ? dir : "/tmp")
      == -1) {
    ferry_error("out of memory");
    return -1;
  }
  fd = mkstemp(path);
  if (fd == -1) {
    ferry_error("cannot create a temporary file in %s: %m (set TMPDIR to a "
                "writable directory)", dir && *dir ? dir : "/tmp");
    return -1;
  }
  unlink(path);
  w->fp = fdopen(fd, "w+");
  if (w->fp == NULL) {
    close(fd);
    ferry_error("out of memory");
    return -1;
  }
  if (fwrite(w->mem, 1, w->mem_len, w->fp) != w->mem_len) {
    ferry_error("chunk table: cannot write the temporary file: %m");
    return -1;
  }
  free(w->mem);
  w->mem = NULL;
  w->mem_len = w->mem_cap = 0;
  return 0;
}

static int table_append(struct table_writer *w, const char *line, size_t n)
{
  if (w->fp == NULL && w->mem_len + n > TABLE_MEM_MAX &&
      table_spill(w) == -1)
    return -1;
  if (w->fp) {
    if (fwrite(line, 1, n, w->fp) != n) {
      ferry_error("chunk table: cannot write the temporary file: %m");
      return -1;
    }
    return 0;
  }
  if (w->mem_len + n > w->mem_cap) {
    size_t cap = w->mem_cap ? w->mem_cap * 2 : 65536;
    char *p;

    while (cap < w->mem_len + n)
      cap *= 2;
    p = realloc(w->mem, cap);
    if (p == NULL) {
      ferry_error("out of memory");
      return -1;
    }
    w->mem = p;
    w->mem_cap = cap;
  }
  memcpy(w->mem + w->mem_len, line, n);
  w->mem_len += n;
  return 0;
}

int table_writer_add(struct table_writer *w, const struct image_chunk *c)
{
  char hex[DIGEST_HEX_LEN + 1], line[TABLE_LINE_MAX];
  int n;

  if (c->index < w->next) {
    ferry_error("chunk table: chunk %" PRIu64 " written out of order",
                c->index);
    return -1;
  }
  digest_to_hex(c->digest, hex);
  n = snprintf(line, sizeof line, "%" PRIu64 " %s %s %" PRIu64 "\n",
               c->index, hex, codec_name(c->enc), c->stored_size);
  if (table_append(w, line, (size_t)n) == -1)
    return -1;
  digest_update(w->ctx, line, (size_t)n);
  if (image_digest_add(w->image, c->index, c->digest) == -1)
    return -1;
  w->size += (uint64_t)n;
  w->count++;
  w->data_bytes += image_chunk_len(w->m, c->index);
  w->stored_bytes += c->stored_size;
  w->next = c->index + 1;
  return 0;
}

int table_writer_finish(struct table_writer *w, struct store *s,
                        struct image_manifest *m)
{
  char hex[DIGEST_HEX_LEN + 1], buf[1 << 16];
  struct store_writer *sw;
  uint64_t have;
  size_t n;
  int r;

  if (w->fp && fflush(w->fp) != 0) {
    ferry_error("chunk table: cannot write the temporary file: %m");
    return -1;
  }
  digest_final(w->ctx, m->table_digest);
  image_digest_final(w->image, m->image_digest);
  digest_to_hex(m->table_digest, hex);
  snprintf(m->table_key, sizeof m->table_key, "tables/%s.tsv", hex);
  m->table_size = w->size;
  m->data_chunks = w->count;
  m->data_bytes = w->data_bytes;
  m->stored_bytes = w->stored_bytes;

  /* named by its digest: a table already there (a resumed run) is whole */
  r = store_head(s, m->table_key, &have);
  if (r == -1)
    return -1;
  if (r == 1 && have == w->size)
    return 0;
  if (w->fp == NULL)
    return store_put(s, m->table_key, w->mem ? w->mem : "", w->mem_len);
  rewind(w->fp);
  sw = store_writer_open(s, m->table_key,
                         &(struct store_writer_opts){ .size = w->size });
  if (sw == NULL)
    return -1;
  while ((n = fread(buf, 1, sizeof buf, w->fp)) > 0)
    if (store_writer_write(sw, buf, n) == -1) {
      store_writer_abort(sw);
      return -1;
    }
  if (ferror(w->fp)) {
    ferry_error("chunk table: cannot read the temporary file back: %m");
    store_writer_abort(sw);
    return -1;
  }
  return store_writer_commit(sw);
}

void table_writer_close(struct table_writer *w)
{
  if (w == NULL)
    return;
  if (w->fp)
    fclose(w->fp);
  free(w->mem);
  digest_close(w->ctx);
  image_digest_close(w->image);
  free(w);
}

#define TABLE_READ_STEP (1u << 20)

struct table_reader {
  struct store *s;
  const struct image_manifest *m;
  struct digest_ctx *ctx;
  struct image_digest *image;
  char *buf;                    /* TABLE_READ_STEP + one partial line */
  size_t len, pos;              /* bytes in buf, parse position */
  uint64_t off;                 /* next table offset to fetch */
  uint64_t line, count, next_index;
  int done;
};

struct table_reader *table_reader_open(struct store *s,
                                       const struct image_manifest *m)
{
  struct table_reader *r = calloc(1, sizeof *r);

  if (r == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  r->s = s;
  r->m = m;
  r->ctx = digest_create();
  r->image = image_digest_create(m);
  r->buf = malloc(TABLE_READ_STEP + TABLE_LINE_MAX);
  if (r->ctx == NULL || r->image == NULL || r->buf == NULL) {
    table_reader_close(r);
    ferry_error("out of memory");
    return NULL;
  }
  return r;
}

/* Keep the unparsed tail and fetch the next piece of the table. */
static int table_fill(struct table_reader *r)
{
  size_t want, got;
  uint64_t left = r->m->table_size - r->off;

  if (r->len - r->pos >= TABLE_LINE_MAX) {
    ferry_error("chunk table %s in %s: line %" PRIu64 " is too long: the "
                "image is damaged", r->m->table_key, store_url(r->s),
                r->line + 1);
    return -1;
  }
  memmove(r->buf, r->buf + r->pos, r->len - r->pos);
  r->len -= r->pos;
  r->pos = 0;
  want = left < TABLE_READ_STEP ? (size_t)left : TABLE_READ_STEP;
  if (want == 0)
    return 0;
  if (store_get(r->s, r->m->table_key, r->off, r->buf + r->len, want,
                &got) == -1) {
    if (errno == ENOENT)
      ferry_error("chunk table %s is missing from %s: the image is "
                  "damaged; clone the disk again", r->m->table_key,
                  store_url(r->s));
    return -1;
  }
  if (got != want) {
    ferry_error("chunk table %s in %s is shorter than the manifest says "
                "(%" PRIu64 " bytes): the image is damaged; clone the disk "
                "again", r->m->table_key, store_url(r->s), r->m->table_size);
    return -1;
  }
  digest_update(r->ctx, r->buf + r->len, got);
  r->len += got;
  r->off += got;
  return 0;
}

static int table_end(struct table_reader *r)
{
  uint8_t d[DIGEST_LEN];

  digest_final(r->ctx, d);
  if (memcmp(d, r->m->table_digest, DIGEST_LEN) != 0) {
    ferry_error("chunk table %s in %s does not match its digest: the table "
                "was altered; clone the disk again", r->m->table_key,
                store_url(r->s));
    return -1;
  }
  if (r->count != r->m->data_chunks) {
    ferry_error("chunk table %s lists %" PRIu64 " chunks, the manifest "
                "%" PRIu64 ": the image is damaged", r->m->table_key,
                r->count, r->m->data_chunks);
    return -1;
  }
  image_digest_final(r->image, d);
  if (memcmp(d, r->m->image_digest, DIGEST_LEN) != 0) {
    ferry_error("image digest of %s does not match its manifest: the image "
                "is damaged; clone the disk again", store_url(r->s));
    return -1;
  }
  r->done = 1;
  return 0;
}

int table_reader_next(struct table_reader *r, struct image_chunk *c)
{
  char *nl;

  if (r->done)
    return 0;
  nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
  if (nl == NULL) {
    if (table_fill(r) == -1)
      return -1;
    nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
  }
  if (nl == NULL) {
    if (r->len - r->pos != 0) {
      ferry_error("chunk table %s in %s: line %" PRIu64 " is malformed or "
                  "unterminated: the image is damaged", r->m->table_key,
                  store_url(r->s), r->line + 1);
      return -1;
    }
    return table_end(r) == -1 ? -1 : 0;
  }
  *nl = '\0';
  r->line++;
  if (nl - (r->buf + r->pos) >= TABLE_LINE_MAX ||
      image_table_parse_line(r->buf + r->pos, r->m, c) == -1) {
    ferry_error_prefix("chunk table %s in %s, line %" PRIu64 ": ",
                       r->m->table_key, store_url(r->s), r->line);
    return -1;
  }
  r->pos = (size_t)(nl - r->buf) + 1;
  if (c->index < r->next_index) {
    ferry_error("chunk table %s in %s, line %" PRIu64 ": chunk %" PRIu64
                " is out of order: the image is damaged", r->m->table_key,
                store_url(r->s), r->line, c->index);
    return -1;
  }
  r->next_index = c->index + 1;
  r->count++;
  if (image_digest_add(r->image, c->index, c->digest) == -1)
    return -1;
  return 1;
}

void table_reader_close(struct table_reader *r)
{
  if (r == NULL)
    return;
  digest_close(r->ctx);
  image_digest_close(r->image);
  free(r->buf);
  free(r);
}
