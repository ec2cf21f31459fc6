#include "tools/sink/sink_apply.h"

#include <nlohmann/json.hpp>

namespace weir::sink {

void SinkCounters::Add(const SinkCounters& o) {
  messages += o.messages;
  upserts += o.upserts;
  duplicates += o.duplicates;
  stale += o.stale;
  retractions += o.retractions;
  losses += o.losses;
  malformed += o.malformed;
}

std::string SinkCounters::Line() const {
  return "messages=" + std::to_string(messages) + " upserts=" + std::to_string(upserts) +
         " duplicates=" + std::to_string(duplicates) + " stale=" + std::to_string(stale) +
         " retractions=" + std::to_string(retractions) + " losses=" + std::to_string(losses) +
         " malformed=" + std::to_string(malformed);
}

std::string SinkCounters::Json() const {
  nlohmann::ordered_json j;
  j["messages"] = messages;
  j["upserts"] = upserts;
  j["duplicates"] = duplicates;
  j["stale"] = stale;
  j["retractions"] = retractions;
  j["losses"] = losses;
  j["malformed"] = malformed;
  return j.dump();
}

namespace {

Status ApplyElement(ResultStore* store, const nlohmann::ordered_json& e, SinkCounters* c,
                    std::vector<Change>* changes) {
  auto id = e.is_object() ? e.find("id") : e.end();
  if (!e.is_object() || id == e.end() || !id->is_string() ||
      id->get_ref<const std::string&>().empty()) {
    ++c->malformed;
    return Status::Ok();
  }
  const std::string& id_text = id->get_ref<const std::string&>();
  auto rev = e.find("rev");
  auto lost = e.find("lost");
  if (rev == e.end() && lost != e.end() && lost->is_number()) {
    // A loss record: {"id": "<gateway>/loss/<first>-<last>", "lost": N, "from", "to"}.
    bool inserted = false;
    std::string record = e.dump();
    RETURN_IF_ERROR(store->InsertLoss(id_text, record, &inserted));
    if (inserted) {
      ++c->losses;
      changes->push_back({Change::kLoss, id_text, 0, std::move(record)});
    } else {
      ++c->duplicates;
    }
    return Status::Ok();
  }
  if (rev == e.end() || !rev->is_number_integer() || rev->get<int64_t>() < 0) {
    ++c->malformed;
    return Status::Ok();
  }
  int64_t rev_value = rev->get<int64_t>();
  auto retracted = e.find("retracted");
  bool is_retraction = retracted != e.end() && retracted->is_boolean() && retracted->get<bool>();
  std::string json = e.dump();
  UpsertOutcome outcome = UpsertOutcome::kApplied;
  RETURN_IF_ERROR(
      store->Upsert(id_text, rev_value, is_retraction, is_retraction ? nullptr : &json, &outcome));
  switch (outcome) {
    case UpsertOutcome::kApplied:
      if (is_retraction) {
        ++c->retractions;
        changes->push_back({Change::kRetraction, id_text, rev_value, std::move(json)});
      } else {
        ++c->upserts;
        changes->push_back({Change::kUpsert, id_text, rev_value, std::move(json)});
      }
      break;
    case UpsertOutcome::kDuplicate:
      ++c->duplicates;
      break;
    case UpsertOutcome::kStale:
      ++c->stale;
      break;
  }
  return Status::Ok();
}

}  // namespace

Status ApplyMessage(ResultStore* store, std::string_view payload, SinkCounters* counters,
                    std::vector<Change>* changes) {
  SinkCounters local;
  std::vector<Change> local_changes;
  nlohmann::ordered_json doc =
      nlohmann::ordered_json::parse(payload, nullptr, /*allow_exceptions=*/false);
  local.messages = 1;
  if (doc.is_discarded()) {
    // Not JSON: nothing to store; acknowledging it is right (redelivery
    // would bring the same bytes again).
    local.malformed = 1;
    counters->Add(local);
    return Status::Ok();
  }
  RETURN_IF_ERROR(store->Begin());
  Status st;
  if (doc.is_array()) {
    for (const auto& e : doc) {
      st = ApplyElement(store, e, &local, &local_changes);
      if (!st.ok()) break;
    }
  } else {
    st = ApplyElement(store, doc, &local, &local_changes);
  }
  if (st.ok()) st = store->Commit();
  if (!st.ok()) {
    store->Rollback();
    return st;
  }
  counters->Add(local);
  for (auto& ch : local_changes) changes->push_back(std::move(ch));
  return Status::Ok();
}

}  // namespace weir::sink
