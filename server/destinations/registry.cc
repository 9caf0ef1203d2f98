#include "registry.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "validation.h"

namespace exportd::destinations {
namespace {

bool IsNameChar(char c, bool allow_dash) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || (allow_dash && c == '-');
}

bool IsWellFormedName(std::string_view name, bool allow_dash) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!IsNameChar(c, allow_dash)) return false;
  }
  return true;
}

bool IsBlank(std::string_view text) {
  for (char c : text) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
  }
  return true;
}

std::string Describe(const std::string& library_path) {
  return library_path.empty() ? std::string("(registered in-process)")
                              : absl::StrCat("'", library_path, "'");
}

}  // namespace

absl::Status ValidateManifest(const sdk::Manifest& m) {
  auto invalid = [&m](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat("manifest of destination '", m.name, "': ",
                                                   std::forward<decltype(parts)>(parts)...));
  };
  if (m.name.empty()) return invalid("the name is empty; set Manifest::name, e.g. \"iterable\"");
  if (!IsWellFormedName(m.name, /*allow_dash=*/true)) {
    return invalid("the name is ill-formed; use only [a-z0-9_-]");
  }
  if (m.version.empty()) return invalid("the version is empty; set Manifest::version");
  if (IsBlank(m.privacy_statement)) {
    return invalid(
        "the privacy statement is empty; set Manifest::privacy_statement to the data privacy "
        "and compliance statement admins agree to (where the data goes, who receives it, under "
        "which terms), see docs/writing-a-destination.md");
  }
  if (IsBlank(m.privacy_statement_version)) {
    return invalid(
        "the privacy statement has no version; set Manifest::privacy_statement_version, e.g. "
        "\"2026-12-01\", and change it whenever the statement changes");
  }
  std::set<std::string> setting_names;
  for (const sdk::SettingSpec& s : m.settings) {
    if (!IsWellFormedName(s.name, /*allow_dash=*/false)) {
      return invalid("setting name '", s.name, "' is empty or ill-formed; use only [a-z0-9_]");
    }
    if (!setting_names.insert(s.name).second) {
      return invalid("setting '", s.name, "' is declared twice");
    }
    if (s.type == sdk::SettingType::kEnum && s.allowed_values.empty()) {
      return invalid("enum setting '", s.name, "' has no allowed values");
    }
    if (s.type != sdk::SettingType::kEnum && !s.allowed_values.empty()) {
      return invalid("setting '", s.name, "' has allowed values but is not an enum");
    }
    if (!s.default_value.empty()) {
      absl::Status parses = CheckSettingValue(s, s.default_value);
      if (!parses.ok()) {
        return invalid("the default of setting '", s.name, "' is not valid: ", parses.message());
      }
      if (s.secret) return invalid("secret setting '", s.name, "' must not have a default");
    }
  }
  std::set<std::string> field_names;
  const std::set<std::string> reserved(m.reserved_fields.begin(), m.reserved_fields.end());
  for (const sdk::MappingFieldSpec& f : m.mapping_fields) {
    if (f.name.empty()) return invalid("a mapping field has an empty name");
    if (!field_names.insert(f.name).second) {
      return invalid("mapping field '", f.name, "' is declared twice");
    }
    if (reserved.count(f.name)) {
      return invalid(f.required ? "required " : "", "mapping field '", f.name,
                     "' is also a reserved field");
    }
  }
  for (const std::string& r : m.reserved_fields) {
    if (r.empty()) return invalid("a reserved field has an empty name");
  }
  const sdk::SyncSpeed& speed = m.speed;
  if (speed.max_records_per_batch <= 0) return invalid("speed.max_records_per_batch must be > 0");
  if (speed.max_bytes_per_batch <= 0) return invalid("speed.max_bytes_per_batch must be > 0");
  if (speed.max_parallel_batches <= 0) return invalid("speed.max_parallel_batches must be > 0");
  if (speed.records_per_second < 0) {
    return invalid("speed.records_per_second must be >= 0 (0: no limit)");
  }
  if (speed.requests_per_second < 0) {
    return invalid("speed.requests_per_second must be >= 0 (0: no limit)");
  }
  return absl::OkStatus();
}

DestinationRegistry::~DestinationRegistry() {
  absl::MutexLock lock(&mu_);
  // Entry's member order already destroys each destination before its
  // library; clearing here makes the order independent of the map's.
  for (auto& [name, entry] : entries_) entry->destination.reset();
  entries_.clear();
}

absl::Status DestinationRegistry::Register(std::unique_ptr<sdk::Destination> destination,
                                           std::string library_path,
                                           std::shared_ptr<void> library) {
  if (destination == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("library ", Describe(library_path), " gave a null destination"));
  }
  const sdk::Manifest& manifest = destination->manifest();
  absl::Status valid = ValidateManifest(manifest);
  if (!valid.ok()) {
    destination.reset();  // Before `library` can be released.
    return valid;
  }
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(manifest.name);
  if (it != entries_.end()) {
    std::string message = absl::StrCat("destination '", manifest.name, "' from library ",
                                       Describe(library_path), " is already registered by library ",
                                       Describe(it->second->library_path));
    destination.reset();
    return absl::AlreadyExistsError(message);
  }
  auto entry = std::make_unique<Entry>();
  entry->library = std::move(library);
  entry->destination = std::move(destination);
  entry->library_path = std::move(library_path);
  std::string name = entry->destination->manifest().name;
  entries_.emplace(std::move(name), std::move(entry));
  return absl::OkStatus();
}

absl::StatusOr<sdk::Destination*> DestinationRegistry::Get(std::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(name);
  if (it != entries_.end()) return it->second->destination.get();
  std::vector<std::string> known;
  for (const auto& [known_name, entry] : entries_) known.push_back(known_name);
  return absl::NotFoundError(absl::StrCat(
      "no destination named '", std::string(name), "' (known: ",
      known.empty() ? std::string("none; is the plugin directory right?") : absl::StrJoin(known, ", "),
      ")"));
}

std::vector<RegisteredDestination> DestinationRegistry::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<RegisteredDestination> out;
  out.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) {
    out.push_back({entry->destination.get(), &entry->destination->manifest(), entry->library_path});
  }
  return out;
}

void DestinationRegistry::AddRefused(std::string library_path, std::string reason) {
  absl::MutexLock lock(&mu_);
  refused_.push_back({std::move(library_path), std::move(reason)});
}

std::vector<RefusedPlugin> DestinationRegistry::refused() const {
  absl::MutexLock lock(&mu_);
  return refused_;
}

}  // namespace exportd::destinations
