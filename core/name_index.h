// NameIndex: an open-addressing index from short names (device ids, encoded
// keys) to dense ids 0, 1, 2, ... in insertion order. Ids are never removed.
// Used on the per-reading path (the engine's device and key tables, dedup),
// so a lookup hashes the name once with a cheap hash and compares bytes only
// on a likely match; string_view lookups never copy the name.
//
// REQUIRES: external synchronization.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace weir {

namespace name_index_internal {
inline uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint64_t Load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t Mix(uint64_t h) {
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h;
}
}  // namespace name_index_internal

// A fast hash for short names: 8 bytes per multiply-xorshift round instead of
// std::hash's Murmur, which was most of the cost of a lookup. Not keyed: like
// std::hash, it relies on limits (source.max_devices) rather than secrecy
// against crafted names.
inline uint64_t HashName(std::string_view s) {
  using name_index_internal::Load32;
  using name_index_internal::Load64;
  using name_index_internal::Mix;
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
  while (n > 8) {
    h = Mix(h ^ Load64(p));
    p += 8;
    n -= 8;
  }
  uint64_t tail;
  if (n >= 4) {
    tail = Load32(p) << 32 | Load32(p + n - 4);  // overlapping reads cover 4..8 bytes
  } else {
    tail = n == 0 ? 0
                  : static_cast<uint64_t>(static_cast<uint8_t>(p[0])) << 16 |
                        static_cast<uint64_t>(static_cast<uint8_t>(p[n / 2])) << 8 |
                        static_cast<uint8_t>(p[n - 1]);
  }
  return Mix(h ^ tail);
}

// Open-addressing index from a name to a dense id (ids are never removed).
// Slots keep the upper hash bits beside the id, so a probe compares names
// only on a likely match and touches no name on a miss.
class NameIndex {
 public:
  int32_t Find(std::string_view s) const { return FindHashed(s, HashName(s)); }
  int32_t Insert(std::string_view s) { return InsertHashed(s, HashName(s)); }
  int32_t FindOrInsert(std::string_view s) {
    uint64_t h = HashName(s);
    int32_t id = FindHashed(s, h);
    return id >= 0 ? id : InsertHashed(s, h);
  }
  const std::string& name(int32_t id) const { return names_[static_cast<size_t>(id)]; }
  int32_t size() const { return static_cast<int32_t>(names_.size()); }

 private:
  struct Slot {
    int32_t id = -1;
    uint32_t tag = 0;
  };
  static uint32_t Tag(uint64_t h) { return static_cast<uint32_t>(h >> 32); }

  int32_t FindHashed(std::string_view s, uint64_t h) const {
    if (table_.empty()) return -1;
    size_t mask = table_.size() - 1;
    uint32_t tag = Tag(h);
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& slot = table_[i];
      if (slot.id < 0) return -1;
      if (slot.tag == tag) {
        const std::string& name = names_[static_cast<size_t>(slot.id)];
        if (name.size() == s.size() && std::memcmp(name.data(), s.data(), s.size()) == 0) {
          return slot.id;
        }
      }
    }
  }
  int32_t InsertHashed(std::string_view s, uint64_t h) {
    if ((names_.size() + 1) * 2 > table_.size()) Grow();
    int32_t id = static_cast<int32_t>(names_.size());
    names_.emplace_back(s);
    Place(id, h);
    return id;
  }
  void Place(int32_t id, uint64_t h) {
    size_t mask = table_.size() - 1;
    size_t i = h & mask;
    while (table_[i].id >= 0) i = (i + 1) & mask;
    table_[i] = Slot{id, Tag(h)};
  }
  void Grow() {
    // Hashes are recomputed rather than stored: growth is rare, memory is not.
    table_.assign(table_.empty() ? 64 : table_.size() * 2, Slot{});
    for (int32_t id = 0; id < static_cast<int32_t>(names_.size()); ++id) {
      Place(id, HashName(names_[static_cast<size_t>(id)]));
    }
  }
  std::vector<Slot> table_;
  std::vector<std::string> names_;
};

}  // namespace weir
