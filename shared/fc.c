/*
 * fc.c - framecast's common vocabulary: names for error values. Declarations are in fc.h.
 */
#include "fc.h"

const char *fc_strerror(enum fc_err err)
{
    switch (err) {
    case FC_OK:
        return "ok";
    case FC_AGAIN:
        return "try again";
    case FC_EOF:
        return "end of input";
    case FC_NOMEM:
        return "out of memory";
    case FC_PROTO:
        return "protocol error";
    case FC_AUTH:
        return "authentication failed";
    case FC_LIMIT:
        return "limit reached";
    case FC_IO:
        return "I/O error";
    }
    return "unknown error";
}
