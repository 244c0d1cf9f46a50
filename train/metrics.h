// Training metrics as JSON Lines: one object per logged step ({"step":100,"loss":2.31,...}),
// appended and flushed line by line so a crash loses at most the line being written and any
// tool (launch/plot_metrics.py, jq, pandas) can read the file while the run goes on.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <type_traits>

namespace longnet {

// One JSON object, fields in the order added. Strings are escaped; a NaN or infinite number is
// written as null (JSON has no NaN).
class JsonLine {
 public:
  JsonLine& add(const std::string& key, double value);
  JsonLine& add(const std::string& key, const std::string& value);
  JsonLine& add(const std::string& key, const char* value) { return add(key, std::string(value)); }
  JsonLine& add(const std::string& key, bool value);
  template <typename T,
            std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  JsonLine& add(const std::string& key, T value) {
    return add_raw(key, std::to_string(value));
  }
  // The object, without a newline.
  std::string str() const { return body_.empty() ? "{}" : body_ + "}"; }
  // A line that goes on from `object`, one str() wrote (e.g. kept in a checkpoint): add() puts
  // keys after its own. Throws std::invalid_argument when `object` is not is_object_text.
  static JsonLine continuing(const std::string& object);
  // Whether `text` is one JSON object on one line (what str() writes).
  static bool is_object_text(const std::string& text);

 private:
  JsonLine& add_raw(const std::string& key, const std::string& json_value);
  std::string body_;
};

// The JSON string literal for s (quotes included).
std::string json_quote(const std::string& s);

class MetricsWriter {
 public:
  // Opens `path` for appending (a resumed run continues the file), creating parent dirs, and
  // locks it (flock) against a second job appending its own lines. A last line left incomplete
  // (a write cut short by a full disk or a kill) is dropped first, so the file stays one JSON
  // object per line. Throws std::runtime_error when it cannot, naming the holder's clash.
  // fresh: a new run (not a resumed one): a file that holds rows is first renamed to the first
  // free STEM.N.EXT (core/file_util.h), which kept_as() then names, and a new one is started.
  explicit MetricsWriter(const std::string& path, bool fresh = false);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;
  // A run resumed at `step` from a checkpoint older than the file's last rows (a crash or kill
  // after it) runs those steps again: the trailing rows of later steps are removed first, so the
  // file keeps one row per step and event, in order. Returns how many were removed.
  int64_t drop_rows_after(int64_t step);
  // The "run" of the file's last row (the trainer names its run in every row), "" when the file
  // is empty or that row names none.
  std::string last_row_run();
  // Keeps the rows in the file under another name (the first free STEM.N.EXT, which kept_as()
  // then names) and starts the file empty, as `fresh` does.
  void keep_aside();
  // Removed while this job writes it (the file, or its run folder): made again at its path with
  // every row written so far, and locked. True when it was. Throws std::runtime_error when it
  // cannot be made again.
  bool renew();
  // Appends one line (one write). Throws std::runtime_error on a write error.
  void write(const JsonLine& line);
  const std::string& path() const { return path_; }
  const std::string& kept_as() const { return kept_as_; }

 private:
  // path_ opened for appending (create_new: only as a new file) and locked; its descriptor.
  // Throws std::runtime_error naming the file: not a regular file, another job's lock, errno.
  int open_locked(bool create_new) const;
  std::string path_, kept_as_;
  int fd_ = -1;
};

}  // namespace longnet
