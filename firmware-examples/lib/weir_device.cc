#include "weir_device.h"

#include <flatbuffers/flatbuffers.h>
#include <stdio.h>
#include <string.h>

#include "schemas/reading_generated.h"

namespace weir_fw {
namespace {

// Appends printf output at *pos; false once it no longer fits.
template <typename... Args>
bool Append(char* out, size_t cap, size_t* pos, const char* fmt, Args... args) {
  if (*pos >= cap) return false;
  int n = snprintf(out + *pos, cap - *pos, fmt, args...);
  if (n < 0 || static_cast<size_t>(n) >= cap - *pos) return false;
  *pos += static_cast<size_t>(n);
  return true;
}

// Hands the builder one fixed block and nothing else: the builder is given
// the whole block up front, so it never asks to grow (callers check the
// bound first), and nothing reaches the heap.
class ArenaAllocator : public flatbuffers::Allocator {
 public:
  ArenaAllocator(uint8_t* arena, size_t size) : arena_(arena), size_(size) {}
  uint8_t* allocate(size_t size) override {
    if (used_ || size > size_) return nullptr;
    used_ = true;
    return arena_;
  }
  void deallocate(uint8_t*, size_t) override { used_ = false; }

 private:
  uint8_t* arena_;
  size_t size_;
  bool used_ = false;
};

}  // namespace

size_t EncodeJson(const Schema& schema, const Reading* readings, size_t count, int64_t sent_at,
                  char* out, size_t cap) {
  if (count == 0 || cap == 0) return 0;
  size_t pos = 0;
  if (count > 1 && !Append(out, cap, &pos, "[")) return 0;
  for (size_t r = 0; r < count; ++r) {
    const Reading& reading = readings[r];
    if (!Append(out, cap, &pos, "%s{\"ts\":%lld,\"seq\":%lld,\"sent_at\":%lld", r > 0 ? "," : "",
                static_cast<long long>(reading.ts), static_cast<long long>(reading.seq),
                static_cast<long long>(sent_at))) {
      return 0;
    }
    for (size_t f = 0; f < schema.field_count && f < kMaxFields; ++f) {
      double v = reading.values[f];
      // JSON has no NaN or infinity: a sensor fault is left out, not sent as garbage.
      if (v != v || v > 1e308 || v < -1e308) continue;
      if (!Append(out, cap, &pos, ",\"%s\":%.*f", schema.fields[f], schema.decimals, v)) return 0;
    }
    if (!Append(out, cap, &pos, "}")) return 0;
  }
  if (count > 1 && !Append(out, cap, &pos, "]")) return 0;
  return pos;
}

size_t FlatBuffersArenaSize(const Schema& schema, size_t count) {
  // Strings (length, bytes, NUL, padding), the vectors, the table and its
  // vtable, alignment, and the builder's scratch for the string offsets.
  size_t bytes = 256 + strlen(schema.device) + 8;
  for (size_t f = 0; f < schema.field_count; ++f) bytes += strlen(schema.fields[f]) + 8 + 8;
  bytes += 8 + count * schema.field_count * sizeof(weir::fb::Sample);
  return (bytes + 7) / 8 * 8;
}

const uint8_t* EncodeFlatBuffers(const Schema& schema, const Reading* readings, size_t count,
                                 int64_t sent_at, uint8_t* arena, size_t arena_size, size_t* size) {
  *size = 0;
  arena_size = arena_size / 8 * 8;  // the buffer is built back from the end: keep it aligned
  if (count == 0 || FlatBuffersArenaSize(schema, count) > arena_size) return nullptr;
  ArenaAllocator alloc(arena, arena_size);
  flatbuffers::FlatBufferBuilder b(arena_size, &alloc, false, 8);
  flatbuffers::Offset<flatbuffers::String> names[kMaxFields];
  size_t fields = schema.field_count < kMaxFields ? schema.field_count : kMaxFields;
  for (size_t f = 0; f < fields; ++f) names[f] = b.CreateString(schema.fields[f]);
  auto channels = b.CreateVector(names, fields);
  weir::fb::Sample* samples = nullptr;
  auto samples_vec = b.CreateUninitializedVectorOfStructs(count * fields, &samples);
  for (size_t r = 0; r < count; ++r) {
    for (size_t f = 0; f < fields; ++f) {
      samples[r * fields + f] = weir::fb::Sample(readings[r].ts, readings[r].seq,
                                                 static_cast<uint16_t>(f), readings[r].values[f]);
    }
  }
  auto device = b.CreateString(schema.device);
  auto batch = weir::fb::CreateBatch(b, device, channels, samples_vec, sent_at, true);
  weir::fb::FinishBatchBuffer(b, batch);
  *size = b.GetSize();
  // The finished bytes live inside the arena; the builder's destructor only
  // hands the arena back to the allocator.
  return b.GetBufferPointer();
}

}  // namespace weir_fw
