/* store/xml.h - just enough XML for object-store responses.
 *
 * S3 and Azure answer with small, flat documents (list results, upload
 * ids, error codes).  This finds elements by name and decodes their text;
 * it does not validate.  Input is a capped HTTP body. */
#ifndef FERRY_XML_H
#define FERRY_XML_H

#include <stddef.h>

/* A span of a document: the text between an element's tags. */
struct xml_span {
  const char *p;
  size_t len;
};

/* The next element named tag that starts inside in (from *pos, which is
 * advanced past it): 1 with its content in *out (empty for <tag/>), 0 when
 * there is none. */
int xml_next(struct xml_span in, size_t *pos, const char *tag,
             struct xml_span *out);

/* The first element named tag in in, decoded into a new string (caller
 * frees); NULL when absent (or, with an error, on OOM). */
char *xml_get(struct xml_span in, const char *tag);

/* Decode the five predefined entities and &#N; / &#xN; into a new string
 * (caller frees); NULL with an error on OOM. */
char *xml_text(struct xml_span s);

#endif
