// What the front ends (gRPC and HTTP) need to refuse strangers: API keys and TLS material.
//
// Keys are compared through their SHA-256 digests with a constant-time comparison, so neither the
// content nor the length of a key leaks through timing; keys are never logged (only how many were
// loaded and from which file).
#pragma once
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shard/result.h"

namespace tandem::rpc {

struct ApiKeys {
  std::vector<std::array<unsigned char, 32>> digests;  // SHA-256 of each accepted key
  bool enabled() const { return !digests.empty(); }
};

// One key per line; blank lines and lines starting with '#' are skipped, surrounding whitespace
// trimmed. A file without any key is an error (an empty file would otherwise open the server).
Result<ApiKeys> load_api_keys(const std::string& path);
ApiKeys api_keys_of(const std::vector<std::string>& keys);
// True when `presented` is one of the keys (always true when no keys are configured).
bool key_accepted(const ApiKeys& keys, std::string_view presented);
// "Bearer <token>" (scheme case-insensitive) -> the token; nullopt for anything else.
std::optional<std::string_view> bearer_token(std::string_view authorization);

struct TlsFiles {
  std::string cert_path, key_path, client_ca_path;  // client CA set: clients must present a certificate it signed
  std::string cert_pem, key_pem, client_ca_pem;     // contents, read at start-up
  bool enabled() const { return !cert_path.empty(); }
};
// Reads the PEM files; --tls-cert and --tls-key come together, --tls-client-ca needs both.
// Errors name the flag and the file.
Result<TlsFiles> load_tls(const std::string& cert, const std::string& key, const std::string& client_ca);
// Reads a whole file (PEM for clients); the error names `what` (a flag) and the path.
Result<std::string> read_file_text(const std::string& path, const char* what);

// HOST of HOST:PORT is a loopback address (127.0.0.0/8, ::1, localhost): only this machine can connect.
bool is_loopback_listen(const std::string& host_port);
// The warning a front end logs when it listens beyond loopback without TLS or without a key; "" when safe.
std::string exposure_warning(const char* what, const std::string& listen, bool tls, bool keys);

}  // namespace tandem::rpc
