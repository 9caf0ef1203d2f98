#include "tests/sandbox/list_request.h"

#include <limits>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace exportd::sandbox {
namespace {

// SAX handler for nlohmann::json::sax_parse. Keeps a stack of frames saying what the value
// being read belongs to.
class ListRequestSax {
 public:
  explicit ListRequestSax(ListRequest* out) : out_(out) { stack_.reserve(16); }

  bool null() { return Scalar(nullptr); }
  bool boolean(bool value) { return Scalar(value); }
  bool number_integer(int64_t value) { return Scalar(value); }
  bool number_unsigned(uint64_t value) { return Scalar(value); }
  bool number_float(double value, const std::string& /*text*/) { return Scalar(value); }
  bool string(std::string& value) { return Scalar(std::move(value)); }
  bool binary(nlohmann::json::binary_t& /*value*/) { return Scalar(nullptr); }
  bool start_object(std::size_t /*elements*/) { return Open(/*is_object=*/true); }
  bool start_array(std::size_t /*elements*/) { return Open(/*is_object=*/false); }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }
  bool key(std::string& key) {
    key_ = std::move(key);
    return true;
  }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& error) {
    error_ = error.what();
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  enum class Frame { kTopObject, kSubscribers, kSubscriber, kDom, kSkip };
  struct Entry {
    Frame frame;
    nlohmann::json* dom;  // For kDom: the object or array being filled.
  };

  template <typename T>
  bool Scalar(T&& value) {
    if (stack_.empty()) return true;  // A top-level scalar: is_object stays false.
    Entry& top = stack_.back();
    switch (top.frame) {
      case Frame::kTopObject:
        TopScalar(std::forward<T>(value));
        break;
      case Frame::kSubscribers:
        out_->subscriber_not_object = true;
        break;
      case Frame::kSubscriber:
        SubscriberScalar(std::forward<T>(value));
        break;
      case Frame::kDom:
        if (top.dom->is_object()) {
          (*top.dom)[std::move(key_)] = std::forward<T>(value);
        } else {
          top.dom->emplace_back(std::forward<T>(value));
        }
        break;
      case Frame::kSkip:
        break;
    }
    return true;
  }

  template <typename T>
  void TopScalar(T&& value) {
    using Value = std::decay_t<T>;
    if (key_ == "listId") {
      out_->list_id_present = true;
      if constexpr (std::is_same_v<Value, int64_t>) {
        out_->list_id = value;
      } else if constexpr (std::is_same_v<Value, uint64_t>) {
        if (value <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          out_->list_id = static_cast<int64_t>(value);
        }
      }
    } else if (key_ == "subscribers") {
      out_->has_subscribers = true;
    } else if (key_ == "updateExistingUsersOnly") {
      if constexpr (std::is_same_v<Value, bool>) out_->update_existing_users_only = value;
    } else if (key_ == "channelUnsubscribe") {
      if constexpr (std::is_same_v<Value, bool>) {
        out_->channel_unsubscribe = value;
      } else {
        out_->channel_unsubscribe = false;
      }
    }
  }

  template <typename T>
  void SubscriberScalar(T&& value) {
    using Value = std::decay_t<T>;
    SubscriberRecord& record = out_->subscribers.back();
    bool is_email = key_ == "email";
    if (is_email || key_ == "userId") {
      IdKind& kind = is_email ? record.email_kind : record.user_id_kind;
      std::string& text = is_email ? record.email : record.user_id;
      if constexpr (std::is_same_v<Value, std::string>) {
        kind = IdKind::kString;
        text = std::forward<T>(value);
      } else if constexpr (std::is_same_v<Value, std::nullptr_t>) {
        kind = IdKind::kAbsent;
      } else {
        kind = IdKind::kOther;
        text = nlohmann::json(value).dump();
      }
    } else if (key_ == "dataFields") {
      if constexpr (!std::is_same_v<Value, std::nullptr_t>) {
        record.has_data_fields = true;
        record.data_fields = std::forward<T>(value);
      }
    } else if (key_ == "mergeNestedObjects") {
      if constexpr (std::is_same_v<Value, bool>) record.merge_nested_objects = value;
    }
  }

  bool Open(bool is_object) {
    if (stack_.empty()) {
      out_->is_object = is_object;
      stack_.push_back({is_object ? Frame::kTopObject : Frame::kSkip, nullptr});
      return true;
    }
    Entry& top = stack_.back();
    switch (top.frame) {
      case Frame::kTopObject:
        if (key_ == "subscribers") {
          out_->has_subscribers = true;
          out_->subscribers_is_array = !is_object;
          if (!is_object) {
            stack_.push_back({Frame::kSubscribers, nullptr});
            return true;
          }
        } else if (key_ == "listId") {
          out_->list_id_present = true;
        } else if (key_ == "channelUnsubscribe") {
          out_->channel_unsubscribe = false;
        }
        break;
      case Frame::kSubscribers:
        if (is_object) {
          out_->subscribers.emplace_back();
          stack_.push_back({Frame::kSubscriber, nullptr});
          return true;
        }
        out_->subscriber_not_object = true;
        break;
      case Frame::kSubscriber: {
        SubscriberRecord& record = out_->subscribers.back();
        if (key_ == "dataFields") {
          record.has_data_fields = true;
          record.data_fields = is_object ? nlohmann::json::object() : nlohmann::json::array();
          stack_.push_back({Frame::kDom, &record.data_fields});
          return true;
        }
        if (key_ == "email" || key_ == "userId") {
          bool is_email = key_ == "email";
          (is_email ? record.email_kind : record.user_id_kind) = IdKind::kOther;
          (is_email ? record.email : record.user_id) = is_object ? "{...}" : "[...]";
        }
        break;
      }
      case Frame::kDom: {
        nlohmann::json child = is_object ? nlohmann::json::object() : nlohmann::json::array();
        nlohmann::json* slot;
        if (top.dom->is_object()) {
          slot = &((*top.dom)[std::move(key_)] = std::move(child));
        } else {
          top.dom->push_back(std::move(child));
          slot = &top.dom->back();
        }
        stack_.push_back({Frame::kDom, slot});
        return true;
      }
      case Frame::kSkip:
        break;
    }
    stack_.push_back({Frame::kSkip, nullptr});
    return true;
  }

  bool Close() {
    stack_.pop_back();
    return true;
  }

  ListRequest* out_;
  std::vector<Entry> stack_;
  std::string key_;
  std::string error_;
};

}  // namespace

absl::StatusOr<ListRequest> ParseListRequest(absl::string_view body) {
  ListRequest request;
  ListRequestSax sax(&request);
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(body.begin(), body.end(), &sax);
  } catch (const nlohmann::json::exception& error) {
    return absl::InvalidArgumentError(
        absl::StrCat("Could not parse request body as JSON: ", error.what()));
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("Could not parse request body as JSON: ", sax.error()));
  }
  return request;
}

}  // namespace exportd::sandbox
