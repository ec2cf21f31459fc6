#include "core/text.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace weir {

void AppendDouble(double v, std::string* out) {
  if (!std::isfinite(v)) {
    out->append("null");
    return;
  }
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, res.ptr);
}

void AppendInt(int64_t v, std::string* out) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, res.ptr);
}

void AppendKeyNumber(double v, std::string* out) {
  // Integral values within int64 print without exponent or fraction.
  if (std::isfinite(v) && v == std::trunc(v) && std::fabs(v) < 9.2e18) {
    AppendInt(static_cast<int64_t>(v), out);
    return;
  }
  AppendDouble(v, out);
}

void AppendIdPart(std::string_view part, std::string* out) {
  for (char c : part) {
    switch (c) {
      case '/': out->append("%2F"); break;
      case ',': out->append("%2C"); break;
      case '%': out->append("%25"); break;
      default: out->push_back(c);
    }
  }
}

void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

}  // namespace weir
