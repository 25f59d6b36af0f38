/*
 * tls_check.h: the TLS part of loading a config. After mp_conf_load(), the
 * master (start-up, HUP, and "moonpool -t") calls mp_tls_check(), which
 * builds every server's SSL_CTX (worker/tls.h) and turns a failure into a
 * positioned config error.
 */
#ifndef MP_TLS_CHECK_H
#define MP_TLS_CHECK_H

#include "core/mp_core.h"
#include "core/conf.h"

/*
 * Builds the TLS contexts of conf (they live as long as conf). Returns
 * MP_OK, or MP_ERROR with "FILE:LINE:COLUMN: message" in err[0..errlen),
 * the position being that of the failing "certificate" or "key" value in
 * the file (of the server when it cannot be found again). Master only.
 */
int mp_tls_check(mp_conf_t *conf, char *err, size_t errlen);

#endif /* MP_TLS_CHECK_H */
