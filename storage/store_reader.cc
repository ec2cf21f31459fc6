// StoreReader: one reading connection (recovery, uplink, status).
#include <algorithm>

#include "storage/schema.h"
#include "storage/store_internal.h"

namespace weir {

using storage_internal::Db;
using storage_internal::Stmt;

struct StoreReader::Impl {
  std::unique_ptr<Db> db;
  Stmt read_outbox, read_newest, state_rows, state_row, journal_tail;
  int schema_version = 0;

  Status PrepareOnce(Stmt* s, const char* sql) {
    if (*s) return Status::Ok();
    auto r = db->Prepare(sql);
    if (!r.ok()) return r.status();
    *s = std::move(*r);
    return Status::Ok();
  }
  Status ReadRows(Stmt& s, std::vector<OutboxRow>* rows, std::string_view what);
};

constexpr const char* kOutboxColumns =
    "pos, kind, id, rev, pipeline, window_start, window_end, payload, created_ms, enqueued_ms";

Status StoreReader::Impl::ReadRows(Stmt& s, std::vector<OutboxRow>* rows, std::string_view what) {
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    OutboxRow row;
    row.pos = s.Int(0);
    std::string_view kind = s.Text(1);
    row.kind = kind.empty() ? OutboxKind::kResult : static_cast<OutboxKind>(kind[0]);
    row.id = std::string(s.Text(2));
    row.rev = s.Int(3);
    row.pipeline = std::string(s.Text(4));
    row.window_start = s.Int(5);
    row.window_end = s.Int(6);
    row.payload = std::string(s.Text(7));
    row.created_ms = s.Int(8);
    row.enqueued_ms = s.Int(9);
    rows->push_back(std::move(row));
  }
  Status st = rc == SQLITE_DONE ? Status::Ok() : db->Error(rc, what);
  s.Reset();
  return st;
}

StoreReader::StoreReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StoreReader::~StoreReader() = default;

Result<std::unique_ptr<StoreReader>> StoreReader::Open(const std::string& path, bool read_only,
                                                       int busy_timeout_ms) {
  int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
  auto db = Db::Open(path, flags, busy_timeout_ms);
  if (!db.ok()) return db.status();
  auto impl = std::make_unique<Impl>();
  impl->db = std::move(*db);
  std::string cache = "PRAGMA cache_size = -" + std::to_string(kReaderCacheBytes / 1024);
  RETURN_IF_ERROR(impl->db->Exec(cache.c_str(), "open: set cache size"));
  auto version = storage_internal::CheckSchema(impl->db.get());
  if (!version.ok()) return version.status();
  impl->schema_version = *version;
  return std::unique_ptr<StoreReader>(new StoreReader(std::move(impl)));
}

Result<int64_t> StoreReader::CheckpointSeq() {
  return impl_->db->QueryInt("SELECT value FROM meta WHERE key = 'checkpoint'", 0);
}

Status StoreReader::ForEachJournal(int64_t after_seq,
                                   const std::function<Status(const Message&)>& fn) {
  RETURN_IF_ERROR(impl_->PrepareOnce(
      &impl_->journal_tail,
      "SELECT seq, arrival_ms, topic, payload FROM journal WHERE seq > ? ORDER BY seq"));
  Stmt& s = impl_->journal_tail;
  s.Bind(1, after_seq);
  Message m;
  int rc;
  Status st;
  while ((rc = s.Step()) == SQLITE_ROW) {
    m.journal_seq = s.Int(0);
    m.arrival_ms = s.Int(1);
    m.topic.assign(s.Text(2));
    m.payload.assign(s.Text(3));
    st = fn(m);
    if (!st.ok()) break;
  }
  if (st.ok() && rc != SQLITE_DONE) st = impl_->db->Error(rc, "recovery: read journal");
  s.Reset();
  return st;
}

Status StoreReader::ForEach(
    std::string_view pipeline_id,
    const std::function<Status(char, std::string_view, std::string_view)>& fn) {
  RETURN_IF_ERROR(impl_->PrepareOnce(
      &impl_->state_rows, "SELECT kind, id, blob FROM state WHERE pipeline = ? ORDER BY kind, id"));
  Stmt& s = impl_->state_rows;
  s.BindText(1, pipeline_id);
  int rc;
  Status st;
  while ((rc = s.Step()) == SQLITE_ROW) {
    std::string_view kind = s.Text(0);
    st = fn(kind.empty() ? '\0' : kind[0], s.Text(1), s.Text(2));
    if (!st.ok()) break;
  }
  if (st.ok() && rc != SQLITE_DONE) st = impl_->db->Error(rc, "recovery: read state");
  s.Reset();
  return st;
}

Result<std::optional<std::string>> StoreReader::GetState(std::string_view pipeline_id, char kind,
                                                         std::string_view id) {
  RETURN_IF_ERROR(impl_->PrepareOnce(
      &impl_->state_row, "SELECT blob FROM state WHERE pipeline = ? AND kind = ? AND id = ?"));
  Stmt& s = impl_->state_row;
  s.BindText(1, pipeline_id);
  s.BindText(2, std::string_view(&kind, 1));
  s.BindBlob(3, id);
  int rc = s.Step();
  std::optional<std::string> out;
  if (rc == SQLITE_ROW) out = std::string(s.Text(0));
  Status st =
      rc == SQLITE_ROW || rc == SQLITE_DONE ? Status::Ok() : impl_->db->Error(rc, "read state row");
  s.Reset();
  if (!st.ok()) return st;
  return out;
}

Status StoreReader::ForEachDedup(
    const std::function<Status(std::string_view, std::string_view)>& fn) {
  auto s = impl_->db->Prepare("SELECT device, blob FROM dedup ORDER BY device");
  if (!s.ok()) return s.status();
  int rc;
  Status st;
  while ((rc = s->Step()) == SQLITE_ROW) {
    st = fn(s->Text(0), s->Text(1));
    if (!st.ok()) return st;
  }
  if (rc != SQLITE_DONE) return impl_->db->Error(rc, "recovery: read dedup state");
  return Status::Ok();
}

Result<std::vector<PipelineRecord>> StoreReader::Pipelines() {
  auto s = impl_->db->Prepare(
      "SELECT name, generation, fingerprint, definition, updated_ms FROM pipelines ORDER BY name");
  if (!s.ok()) return s.status();
  std::vector<PipelineRecord> out;
  int rc;
  while ((rc = s->Step()) == SQLITE_ROW) {
    out.push_back({std::string(s->Text(0)), s->Int(1), std::string(s->Text(2)),
                   std::string(s->Text(3)), s->Int(4)});
  }
  if (rc != SQLITE_DONE) return impl_->db->Error(rc, "read pipelines");
  return out;
}

Result<std::optional<ConfigRecord>> StoreReader::LastConfig() {
  auto s = impl_->db->Prepare("SELECT text, applied_ms FROM config ORDER BY version DESC LIMIT 1");
  if (!s.ok()) return s.status();
  int rc = s->Step();
  if (rc == SQLITE_ROW) {
    return std::optional<ConfigRecord>(ConfigRecord{std::string(s->Text(0)), s->Int(1)});
  }
  if (rc != SQLITE_DONE) return impl_->db->Error(rc, "read config");
  return std::optional<ConfigRecord>();
}

Status StoreReader::ReadOutbox(int64_t after_pos, int64_t upto_pos, int limit,
                               std::vector<OutboxRow>* rows) {
  static const std::string sql = std::string("SELECT ") + kOutboxColumns +
                                 " FROM outbox WHERE pos > ? AND pos <= ? ORDER BY pos LIMIT ?";
  RETURN_IF_ERROR(impl_->PrepareOnce(&impl_->read_outbox, sql.c_str()));
  Stmt& s = impl_->read_outbox;
  s.Bind(1, after_pos);
  s.Bind(2, upto_pos);
  s.Bind(3, limit);
  return impl_->ReadRows(s, rows, "uplink: read outbox");
}

Status StoreReader::ReadNewest(int limit, std::vector<OutboxRow>* rows) {
  static const std::string sql =
      std::string("SELECT ") + kOutboxColumns + " FROM outbox ORDER BY pos DESC LIMIT ?";
  RETURN_IF_ERROR(impl_->PrepareOnce(&impl_->read_newest, sql.c_str()));
  Stmt& s = impl_->read_newest;
  s.Bind(1, limit);
  size_t first = rows->size();
  RETURN_IF_ERROR(impl_->ReadRows(s, rows, "uplink: read newest"));
  std::reverse(rows->begin() + static_cast<std::ptrdiff_t>(first), rows->end());
  return Status::Ok();
}

Result<StoreStatus> StoreReader::ReadStatus(int64_t now_ms) {
  Db* db = impl_->db.get();
  StoreStatus out;
  out.schema_version = impl_->schema_version;
  // One read transaction: every figure comes from the same snapshot.
  RETURN_IF_ERROR(db->Exec("BEGIN", "status: begin"));
  auto body = [&]() -> Status {
    auto s = db->Prepare(
        "SELECT count(*), total(length(CAST(payload AS BLOB))), min(enqueued_ms), "
        "total(kind = 'l') FROM outbox");
    if (!s.ok()) return s.status();
    int rc = s->Step();
    if (rc != SQLITE_ROW) return db->Error(rc, "status: outbox");
    out.outbox_rows = s->Int(0);
    out.outbox_bytes = s->Int(1);
    out.oldest_enqueued_ms = s->IsNull(2) ? 0 : s->Int(2);
    out.oldest_age_ms =
        out.oldest_enqueued_ms ? std::max<int64_t>(0, now_ms - out.oldest_enqueued_ms) : 0;
    out.loss_records = s->Int(3);
    auto j = db->Prepare(
        "SELECT count(*), total(length(payload)) FROM journal WHERE seq > "
        "(SELECT value FROM meta WHERE key = 'checkpoint')");
    if (!j.ok()) return j.status();
    rc = j->Step();
    if (rc != SQLITE_ROW) return db->Error(rc, "status: journal");
    out.journal_rows = j->Int(0);
    out.journal_bytes = j->Int(1);
    auto m = db->Prepare("SELECT key, value FROM meta ORDER BY key");
    if (!m.ok()) return m.status();
    while ((rc = m->Step()) == SQLITE_ROW) {
      std::string_view k = m->Text(0);
      if (k == "checkpoint") out.checkpoint_seq = m->Int(1);
      if (k == "lost_total") out.lost_total = m->Int(1);
      if (k.substr(0, 8) == "counter.")
        out.counters.emplace_back(std::string(k.substr(8)), m->Int(1));
    }
    if (rc != SQLITE_DONE) return db->Error(rc, "status: meta");
    auto pipelines = Pipelines();
    if (!pipelines.ok()) return pipelines.status();
    auto pending = db->Prepare("SELECT count(*) FROM outbox WHERE pipeline = ?");
    if (!pending.ok()) return pending.status();
    for (PipelineRecord& p : *pipelines) {
      PipelineStatus ps;
      pending->BindText(1, p.name);
      rc = pending->Step();
      if (rc != SQLITE_ROW) return db->Error(rc, "status: pipeline backlog");
      ps.pending_rows = pending->Int(0);
      pending->Reset();
      ps.pipeline = std::move(p);
      out.pipelines.push_back(std::move(ps));
    }
    auto config = LastConfig();
    if (!config.ok()) return config.status();
    out.config = std::move(*config);
    auto pages = db->QueryInt("PRAGMA page_count");
    auto page_size = db->QueryInt("PRAGMA page_size");
    if (pages.ok() && page_size.ok()) {
      out.file_bytes = *pages * *page_size + storage_internal::FileSize(db->path() + "-wal");
    }
    return Status::Ok();
  };
  Status st = body();
  db->RollbackQuietly();  // a read transaction: nothing to keep
  if (!st.ok()) return st;
  return out;
}

}  // namespace weir
