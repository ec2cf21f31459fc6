// Text forms that are part of the contract: numbers, key text, id parts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace weir {

// Shortest round-trip decimal form of a double ("21.5", "2", "1e+21").
// Non-finite values are written as null by JSON writers; here they give "null".
void AppendDouble(double v, std::string* out);
void AppendInt(int64_t v, std::string* out);

// Key text of a JSON number attribute (DESIGN 4 `key`): shortest round-trip
// form without ".0", so 5.0 gives "5".
void AppendKeyNumber(double v, std::string* out);

// Percent-encodes '/', ',' and '%' (uppercase hex) for one part of a result id.
void AppendIdPart(std::string_view part, std::string* out);

// Appends `s` as a JSON string literal (with quotes and escapes).
void AppendJsonString(std::string_view s, std::string* out);

}  // namespace weir
