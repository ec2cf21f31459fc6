#include "runtime/processor.h"

#include <algorithm>

namespace weir {

MessageProcessor::MessageProcessor(std::unique_ptr<MessageDecoder> decoder,
                                   std::unique_ptr<Engine> engine, int64_t max_devices)
    : decoder_(std::move(decoder)), engine_(std::move(engine)), dedup_(max_devices) {}

Result<std::unique_ptr<MessageProcessor>> MessageProcessor::Create(
    const Config& config, std::unique_ptr<Engine> engine) {
  if (engine == nullptr) return InvalidArgument("no engine");
  Result<std::unique_ptr<MessageDecoder>> decoder = MessageDecoder::Create(config);
  if (!decoder.ok()) return decoder.status();
  return std::unique_ptr<MessageProcessor>(new MessageProcessor(
      std::move(decoder.value()), std::move(engine), config.source.max_devices));
}

Result<std::unique_ptr<MessageProcessor>> MessageProcessor::Create(
    const Config& config, const std::vector<int64_t>& generations) {
  Result<std::unique_ptr<Engine>> engine = Engine::Create(config, generations);
  if (!engine.ok()) return engine.status();
  return Create(config, std::move(engine.value()));
}

void MessageProcessor::AdvanceTo(int64_t now_ms, EngineOutput* out) {
  if (started_) now_ms = std::max(now_ms, now_ms_);
  started_ = true;
  now_ms_ = now_ms;
  engine_->AdvanceTo(now_ms, out);
}

const MessageOutcome& MessageProcessor::Process(std::string_view topic, std::string_view payload,
                                                int64_t arrival_ms, EngineOutput* out) {
  ++messages_;
  outcome_ = MessageOutcome();
  AdvanceTo(arrival_ms, out);
  const int64_t now = now_ms_;
  const DecodedMessage& d = decoder_->Decode(topic, payload, now);
  outcome_.rejected = d.rejected;
  outcome_.first_reject = d.first_reject;
  outcome_.first_reject_detail = d.first_reject_detail;

  switch (d.kind) {
    case DecodedMessage::Kind::kStatusIgnored: outcome_.status_ignored = true; break;
    case DecodedMessage::Kind::kStatus:
      if (!dedup_.Touch(d.device)) {
        decoder_->CountReject(RejectReason::kTooManyDevices);
        if (outcome_.rejected++ == 0) {
          outcome_.first_reject = RejectReason::kTooManyDevices;
          outcome_.first_reject_detail = "status message";
        }
        break;
      }
      engine_->OnStatus(d.device, d.online, now, out);
      break;
    case DecodedMessage::Kind::kData:
      for (size_t i = 0; i < d.reading_count; ++i) {
        const Reading& r = d.readings[i];
        switch (dedup_.Check(r.device, r.has_seq, r.seq)) {
          case DedupVerdict::kDuplicate:
            ++duplicates_;
            ++outcome_.duplicates;
            continue;
          case DedupVerdict::kTooManyDevices:
            decoder_->CountReject(RejectReason::kTooManyDevices);
            if (outcome_.rejected++ == 0) {
              outcome_.first_reject = RejectReason::kTooManyDevices;
              outcome_.first_reject_detail = "source.max_devices reached";
            }
            continue;
          case DedupVerdict::kAcceptedUnchecked: ++dedup_unchecked_; break;
          case DedupVerdict::kAccepted: break;
        }
        ++readings_;
        ++outcome_.readings;
        engine_->OnReading(r, now, out);
      }
      break;
  }
  return outcome_;
}

void MessageProcessor::Drain(EngineOutput* out) { engine_->Drain(out); }

IngestCounters MessageProcessor::counters() const {
  const DecodeCounters& dc = decoder_->counters();
  IngestCounters c;
  c.messages = messages_;
  c.readings = readings_;
  c.duplicates = duplicates_;
  c.dedup_unchecked = dedup_unchecked_;
  c.status_messages = dc.status_messages;
  c.status_ignored = dc.status_ignored;
  c.rejected = dc.rejected;
  return c;
}

}  // namespace weir
