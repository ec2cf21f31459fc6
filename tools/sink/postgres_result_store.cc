// The PostgreSQL ResultStore (libpq): the same statements as SQLite's, with
// `result` as jsonb. The rev guard is in the upsert, so any number of sinks
// may write one database concurrently.
#include <libpq-fe.h>

#include <string>

#include "tools/sink/result_store.h"

namespace weir::sink {
namespace {

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS weir_results("
    "  id text PRIMARY KEY, rev integer NOT NULL, retracted boolean NOT NULL, result jsonb);"
    "CREATE TABLE IF NOT EXISTS weir_losses(id text PRIMARY KEY, record jsonb);";

constexpr const char* kUpsert =
    "INSERT INTO weir_results(id, rev, retracted, result) VALUES($1, $2::integer, $3::boolean, "
    "$4::jsonb) "
    "ON CONFLICT (id) DO UPDATE SET rev = EXCLUDED.rev, retracted = EXCLUDED.retracted, "
    "result = CASE WHEN EXCLUDED.retracted THEN weir_results.result ELSE EXCLUDED.result END "
    "WHERE EXCLUDED.rev > weir_results.rev";
constexpr const char* kSelectRev = "SELECT rev FROM weir_results WHERE id = $1";
constexpr const char* kInsertLoss =
    "INSERT INTO weir_losses(id, record) VALUES($1, $2::jsonb) ON CONFLICT (id) DO NOTHING";

class PostgresResultStore : public ResultStore {
 public:
  ~PostgresResultStore() override {
    if (conn_) PQfinish(conn_);
  }

  Status Open(const std::string& uri) {
    conn_ = PQconnectdb(uri.c_str());
    if (PQstatus(conn_) != CONNECTION_OK) {
      // PQerrorMessage names host and database, never the password.
      return Unavailable(std::string("cannot connect to PostgreSQL: ") + PQerrorMessage(conn_));
    }
    // CREATE TABLE IF NOT EXISTS says NOTICE on every start: not news.
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
    RETURN_IF_ERROR(Exec(kSchema));
    return Prepare();
  }

  Status Begin() override { return Exec("BEGIN"); }
  Status Commit() override { return Exec("COMMIT"); }
  void Rollback() override { PQclear(PQexec(conn_, "ROLLBACK")); }

  Status Upsert(const std::string& id, int64_t rev, bool retracted, const std::string* result_json,
                UpsertOutcome* outcome) override {
    std::string rev_text = std::to_string(rev);
    const char* params[4] = {id.c_str(), rev_text.c_str(), retracted ? "true" : "false",
                             result_json ? result_json->c_str() : nullptr};
    PGresult* res = PQexecPrepared(conn_, "upsert", 4, params, nullptr, nullptr, 0);
    Status st = Check(res, PGRES_COMMAND_OK, "upsert " + id);
    std::string changed = st.ok() ? PQcmdTuples(res) : "";
    PQclear(res);
    RETURN_IF_ERROR(st);
    if (changed != "0") {
      *outcome = UpsertOutcome::kApplied;
      return Status::Ok();
    }
    const char* id_param[1] = {id.c_str()};
    res = PQexecPrepared(conn_, "select_rev", 1, id_param, nullptr, nullptr, 0);
    st = Check(res, PGRES_TUPLES_OK, "read rev of " + id);
    int64_t stored = rev;
    if (st.ok() && PQntuples(res) == 1) stored = std::stoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    RETURN_IF_ERROR(st);
    *outcome = stored == rev ? UpsertOutcome::kDuplicate : UpsertOutcome::kStale;
    return Status::Ok();
  }

  Status InsertLoss(const std::string& id, const std::string& record_json,
                    bool* inserted) override {
    const char* params[2] = {id.c_str(), record_json.c_str()};
    PGresult* res = PQexecPrepared(conn_, "insert_loss", 2, params, nullptr, nullptr, 0);
    Status st = Check(res, PGRES_COMMAND_OK, "insert loss " + id);
    if (st.ok()) *inserted = std::string(PQcmdTuples(res)) != "0";
    PQclear(res);
    return st;
  }

 private:
  Status Prepare() {
    for (auto [name, sql, n] :
         {std::make_tuple("upsert", kUpsert, 4), std::make_tuple("select_rev", kSelectRev, 1),
          std::make_tuple("insert_loss", kInsertLoss, 2)}) {
      PGresult* res = PQprepare(conn_, name, sql, n, nullptr);
      Status st = Check(res, PGRES_COMMAND_OK, std::string("prepare ") + name);
      PQclear(res);
      RETURN_IF_ERROR(st);
    }
    return Status::Ok();
  }

  Status Exec(const char* sql) {
    PGresult* res = PQexec(conn_, sql);
    Status st = Check(res, PGRES_COMMAND_OK, sql);
    PQclear(res);
    return st;
  }

  // Maps a failed result to a Status whose code says whether retrying helps.
  Status Check(PGresult* res, ExecStatusType want, const std::string& what) {
    if (res && PQresultStatus(res) == want) return Status::Ok();
    std::string msg = what + ": " + PQerrorMessage(conn_);
    const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    std::string sqlstate = state ? state : "";
    if (PQstatus(conn_) != CONNECTION_OK) {
      PQreset(conn_);  // the next attempt runs on a fresh connection
      if (PQstatus(conn_) == CONNECTION_OK) {
        Status st = Prepare();
        if (!st.ok()) return Unavailable(msg);
      }
      return Unavailable(msg);
    }
    // Serialization failures, deadlocks, and unique races between sinks
    // creating the tables: the transaction can simply be tried again.
    if (sqlstate == "40001" || sqlstate == "40P01" || sqlstate == "23505") return Unavailable(msg);
    if (sqlstate == "53100") return ResourceExhausted(msg);  // disk full
    return Internal(msg);
  }

  PGconn* conn_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<ResultStore>> OpenPostgresResultStore(const std::string& uri) {
  auto store = std::make_unique<PostgresResultStore>();
  RETURN_IF_ERROR(store->Open(uri));
  return std::unique_ptr<ResultStore>(std::move(store));
}

}  // namespace weir::sink
