/* SPDX-License-Identifier: MIT */
/* sn_error.c: messages and names for the SN_E* codes. */
#include <string.h>
#include "socknet.h"

const char *sn_strerror(int err)
{
    if (err == 0)
        return "success";
    switch (err) {
#define SN_XX_SYS(name, msg)                                                                       \
    case SN_##name:                                                                                \
        return msg;
        SN_SYS_ERRNO_MAP(SN_XX_SYS)
#undef SN_XX_SYS
#define SN_XX_LIB(name, value, msg)                                                                \
    case SN_##name:                                                                                \
        return msg;
        SN_LIB_ERRNO_MAP(SN_XX_LIB)
#undef SN_XX_LIB
    }
    if (err < 0 && err > -4096) {
        const char *d = strerrordesc_np(-err); /* static, thread-safe */
        if (d != NULL)
            return d;
    }
    return "unknown error";
}

const char *sn_err_name(int err)
{
    switch (err) {
#define SN_XX_SYS(name, msg)                                                                       \
    case SN_##name:                                                                                \
        return #name;
        SN_SYS_ERRNO_MAP(SN_XX_SYS)
#undef SN_XX_SYS
#define SN_XX_LIB(name, value, msg)                                                                \
    case SN_##name:                                                                                \
        return #name;
        SN_LIB_ERRNO_MAP(SN_XX_LIB)
#undef SN_XX_LIB
    }
    return "UNKNOWN";
}

const char *sn_version(void)
{
    return SN_VERSION_STRING;
}
