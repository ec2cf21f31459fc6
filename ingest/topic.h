// Topic templates (DESIGN 4): `{name}` captures one topic level and is
// subscribed as `+`; a template may end in `#`. A TopicRouter classifies an
// arriving topic as a status message or as data for the first matching data
// template, and yields the captures as attributes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/status.h"

namespace weir {

class TopicTemplate {
 public:
  // Levels are separated by '/'. A level is a literal, `{name}` (a named
  // capture), `+` (an unnamed one-level wildcard) or, last only, `#`.
  // Partial captures such as `dev-{id}` are rejected: MQTT filters cannot
  // express them.
  static Result<TopicTemplate> Parse(std::string_view text);

  const std::string& text() const { return text_; }
  // The MQTT subscription filter: captures become `+`.
  const std::string& filter() const { return filter_; }
  // Capture names in level order (a name may not repeat).
  const std::vector<std::string>& capture_names() const { return capture_names_; }

  // True when `topic` matches. On a match, captures[i] is the level captured
  // by capture_names()[i] (a view into `topic`). `captures` must have room
  // for capture_names().size() entries.
  bool Match(std::string_view topic, std::string_view* captures) const;

 private:
  enum class LevelKind { kLiteral, kCapture, kAny, kRest };
  struct Level {
    LevelKind kind;
    std::string literal;
    int capture = -1;  // index into capture_names_
  };

  std::string text_;
  std::string filter_;
  std::vector<std::string> capture_names_;
  std::vector<Level> levels_;
};

// True when every topic matched by MQTT filter `b` is also matched by `a`,
// so subscribing to both would only bring duplicate deliveries.
bool FilterCovers(std::string_view a, std::string_view b);

// Where an arriving topic goes (DESIGN 4 `topics`, `status`).
struct TopicMatch {
  enum class Kind { kNone, kData, kStatus };
  Kind kind = Kind::kNone;
  int topic_index = -1;  // into SourceConfig::topics for kData
};

class TopicRouter {
 public:
  // REQUIRES: every template parses (ParseConfig checked them).
  static Result<TopicRouter> Create(const SourceConfig& source);

  // A topic that matches the status template is a status message only, even
  // where a data template (one ending in '#', say) matches too; otherwise the
  // first matching data template in config order wins. Fills `captures` for
  // the matched template (room for max_captures() entries).
  TopicMatch Route(std::string_view topic, std::string_view* captures) const;

  const TopicTemplate& data_template(int i) const { return data_[i]; }
  int data_template_count() const { return static_cast<int>(data_.size()); }
  bool has_status() const { return has_status_; }
  const TopicTemplate& status_template() const { return status_; }
  size_t max_captures() const { return max_captures_; }

  // Filters to subscribe to: data templates, then the status template, with
  // any filter covered by another one left out (so a broker never delivers a
  // message twice through overlapping subscriptions).
  std::vector<std::string> SubscriptionFilters() const;

 private:
  std::vector<TopicTemplate> data_;
  TopicTemplate status_;
  bool has_status_ = false;
  size_t max_captures_ = 0;
};

}  // namespace weir
