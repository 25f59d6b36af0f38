/*
 * tls_check.c: positioned errors for the TLS contexts (see tls_check.h).
 *
 * The snapshot keeps the position of each server but not of its tls keys,
 * and only a failed check needs one: the file is then read again with
 * libyaml's document loader and servers[i].tls.<key> looked up. The
 * snapshot was loaded from the same file a moment ago; should the file
 * have changed in between, the server's own position is used.
 */
#include "core/mp_core.h"
#include "master/tls_check.h"
#include "worker/tls.h"

#include <stdio.h>
#include <yaml.h>


/* The value of key in mapping node n, or NULL. */
static yaml_node_t *
mapping_get(yaml_document_t *doc, yaml_node_t *n, const char *key)
{
    yaml_node_pair_t *pair;
    yaml_node_t *k;

    if (n == NULL || n->type != YAML_MAPPING_NODE) {
        return NULL;
    }
    for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        k = yaml_document_get_node(doc, pair->key);
        if (k != NULL && k->type == YAML_SCALAR_NODE
            && k->data.scalar.length == strlen(key)
            && memcmp(k->data.scalar.value, key, k->data.scalar.length) == 0)
        {
            return yaml_document_get_node(doc, pair->value);
        }
    }
    return NULL;
}


/* Finds servers[index].tls.<key> in path; MP_OK with *pos set. */
static int
find_position(const char *path, int index, const char *key,
              mp_conf_pos_t *pos)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_node_t *n;
    FILE *f;
    int rc = MP_ERROR;

    f = fopen(path, "rb");
    if (f == NULL) {
        return MP_ERROR;
    }
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return MP_ERROR;
    }
    yaml_parser_set_input_file(&parser, f);
    if (yaml_parser_load(&parser, &doc)) {
        n = mapping_get(&doc, yaml_document_get_root_node(&doc), "servers");
        if (n != NULL && n->type == YAML_SEQUENCE_NODE && index >= 0
            && index < n->data.sequence.items.top
                           - n->data.sequence.items.start) {
            n = yaml_document_get_node(&doc,
                                       n->data.sequence.items.start[index]);
            n = mapping_get(&doc, mapping_get(&doc, n, "tls"), key);
            if (n != NULL) {
                pos->line = (int) n->start_mark.line + 1;
                pos->column = (int) n->start_mark.column + 1;
                rc = MP_OK;
            }
        }
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}


int
mp_tls_check(mp_conf_t *conf, char *err, size_t errlen)
{
    const mp_conf_server_t *srv = NULL;
    mp_tls_at_t at = MP_TLS_AT_SERVER;
    mp_conf_pos_t pos;
    char msg[768];

    if (mp_tls_conf_init(conf, msg, sizeof(msg), &srv, &at) == MP_OK) {
        return MP_OK;
    }
    if (srv == NULL) {
        snprintf(err, errlen, "%s: %s", conf->file, msg);
        return MP_ERROR;
    }
    pos = srv->pos;
    if (at != MP_TLS_AT_SERVER) {
        find_position(conf->file, srv->index,
                      at == MP_TLS_AT_KEY ? "key" : "certificate", &pos);
    }
    snprintf(err, errlen, "%s:%d:%d: %s", pos.file, pos.line, pos.column,
             msg);
    return MP_ERROR;
}
