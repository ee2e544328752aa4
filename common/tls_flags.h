// The transport-security flags every coherefs program takes, defined once:
//   --tls-ca=FILE --tls-cert=FILE --tls-key=FILE   mutual TLS (PEM files)
//   --insecure                                     plaintext, with a warning
// Link this library and call TransportSecurityFromFlags() after parsing the
// command line; check the result with CheckTransportSecurity (common/tls.h).
#ifndef COHEREFS_COMMON_TLS_FLAGS_H_
#define COHEREFS_COMMON_TLS_FLAGS_H_

#include "common/tls.h"

namespace coherefs {

// The flags' values (empty / false when not given).
TransportSecurity TransportSecurityFromFlags();

}  // namespace coherefs

#endif  // COHEREFS_COMMON_TLS_FLAGS_H_
