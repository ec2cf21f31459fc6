#include "ingest/topic.h"

#include <algorithm>

namespace weir {
namespace {

// Splits on '/', keeping empty levels (MQTT topics may have them).
std::vector<std::string_view> SplitLevels(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

}  // namespace

Result<TopicTemplate> TopicTemplate::Parse(std::string_view text) {
  if (text.empty()) return InvalidArgument("topic template is empty");
  TopicTemplate t;
  t.text_ = std::string(text);
  std::vector<std::string_view> levels = SplitLevels(text);
  for (size_t i = 0; i < levels.size(); ++i) {
    std::string_view level = levels[i];
    Level l;
    if (level == "#") {
      if (i + 1 != levels.size()) {
        return InvalidArgument("'#' must be the last level of topic \"" + t.text_ + "\"");
      }
      l.kind = LevelKind::kRest;
    } else if (level == "+") {
      l.kind = LevelKind::kAny;
    } else if (level.size() >= 2 && level.front() == '{' && level.back() == '}') {
      std::string_view name = level.substr(1, level.size() - 2);
      if (name.empty() || name.find_first_of("{}+#") != std::string_view::npos) {
        return InvalidArgument("bad capture \"" + std::string(level) + "\" in topic \"" +
                               t.text_ + "\"");
      }
      if (std::find(t.capture_names_.begin(), t.capture_names_.end(), name) !=
          t.capture_names_.end()) {
        return InvalidArgument("capture {" + std::string(name) + "} appears twice in topic \"" +
                               t.text_ + "\"");
      }
      l.kind = LevelKind::kCapture;
      l.capture = static_cast<int>(t.capture_names_.size());
      t.capture_names_.emplace_back(name);
    } else {
      if (level.find_first_of("{}+#") != std::string_view::npos) {
        return InvalidArgument("level \"" + std::string(level) + "\" of topic \"" + t.text_ +
                               "\": a capture must be a whole level ({name}); '+' and '#' "
                               "must stand alone");
      }
      l.kind = LevelKind::kLiteral;
      l.literal = std::string(level);
    }
    if (i > 0) t.filter_.push_back('/');
    switch (l.kind) {
      case LevelKind::kLiteral: t.filter_.append(l.literal); break;
      case LevelKind::kCapture:
      case LevelKind::kAny: t.filter_.push_back('+'); break;
      case LevelKind::kRest: t.filter_.push_back('#'); break;
    }
    t.levels_.push_back(std::move(l));
  }
  return t;
}

bool TopicTemplate::Match(std::string_view topic, std::string_view* captures) const {
  // MQTT: wildcards at the first level do not match topics starting with '$'.
  if (!topic.empty() && topic.front() == '$' && !levels_.empty() &&
      levels_.front().kind != LevelKind::kLiteral) {
    return false;
  }
  size_t pos = 0;
  bool more = true;  // whether a level remains in `topic` at `pos`
  for (const Level& l : levels_) {
    if (l.kind == LevelKind::kRest) return true;  // '#' also matches the parent level
    if (!more) return false;
    size_t slash = topic.find('/', pos);
    std::string_view level = slash == std::string_view::npos ? topic.substr(pos)
                                                             : topic.substr(pos, slash - pos);
    switch (l.kind) {
      case LevelKind::kLiteral:
        if (level != l.literal) return false;
        break;
      case LevelKind::kCapture: captures[l.capture] = level; break;
      case LevelKind::kAny:
      case LevelKind::kRest: break;
    }
    if (slash == std::string_view::npos) {
      more = false;
    } else {
      pos = slash + 1;
    }
  }
  return !more;
}

bool FilterCovers(std::string_view a, std::string_view b) {
  std::vector<std::string_view> la = SplitLevels(a), lb = SplitLevels(b);
  for (size_t i = 0; i < la.size(); ++i) {
    if (la[i] == "#") return true;
    if (i >= lb.size()) return false;
    if (lb[i] == "#") return false;  // b reaches deeper than a's fixed levels
    if (la[i] == "+") continue;
    if (lb[i] == "+" || la[i] != lb[i]) return false;
  }
  return la.size() == lb.size();
}

Result<TopicRouter> TopicRouter::Create(const SourceConfig& source) {
  TopicRouter r;
  for (const TopicConfig& tc : source.topics) {
    Result<TopicTemplate> t = TopicTemplate::Parse(tc.topic);
    if (!t.ok()) return t.status();
    r.max_captures_ = std::max(r.max_captures_, t->capture_names().size());
    r.data_.push_back(std::move(t.value()));
  }
  if (source.status.enabled) {
    Result<TopicTemplate> t = TopicTemplate::Parse(source.status.topic);
    if (!t.ok()) return t.status();
    r.max_captures_ = std::max(r.max_captures_, t->capture_names().size());
    r.status_ = std::move(t.value());
    r.has_status_ = true;
  }
  return r;
}

TopicMatch TopicRouter::Route(std::string_view topic, std::string_view* captures) const {
  TopicMatch m;
  if (has_status_ && status_.Match(topic, captures)) {
    m.kind = TopicMatch::Kind::kStatus;
    return m;
  }
  for (size_t i = 0; i < data_.size(); ++i) {
    if (data_[i].Match(topic, captures)) {
      m.kind = TopicMatch::Kind::kData;
      m.topic_index = static_cast<int>(i);
      return m;
    }
  }
  return m;
}

std::vector<std::string> TopicRouter::SubscriptionFilters() const {
  std::vector<std::string> all;
  for (const TopicTemplate& t : data_) all.push_back(t.filter());
  if (has_status_) all.push_back(status_.filter());
  std::vector<std::string> out;
  for (size_t i = 0; i < all.size(); ++i) {
    bool covered = false;
    for (size_t j = 0; j < all.size() && !covered; ++j) {
      if (i == j) continue;
      // Of two equal filters keep the first.
      if (all[i] == all[j]) {
        covered = j < i;
      } else {
        covered = FilterCovers(all[j], all[i]);
      }
    }
    if (!covered) out.push_back(all[i]);
  }
  return out;
}

}  // namespace weir
