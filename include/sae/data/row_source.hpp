// Row sources: what the trainer, the metrics and the programs read rows from. A source has rows of
// inputs and, optionally, distinct targets (a transcoder's next layer; without them the inputs are
// the targets, as sparsify's `forward(x, y=None)` autoencodes). Rows are read by index into a batch
// buffer, so an in-memory matrix, a memory-mapped file kept in its stored dtype, a set of shards, a
// pair of sources and an index view (a split) are peers, and none is copied to be trained on.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/data/activations.hpp>
#include <sae/data/metadata.hpp>
#include <sae/data/split.hpp>
#include <sae/io/array_file.hpp>
#include <sae/io/fingerprint.hpp>
#include <sae/io/json.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sae::data {

template <class Scalar>
class RowSource {
 public:
  virtual ~RowSource() = default;

  virtual index_t rows() const = 0;
  virtual index_t input_dim() const = 0;
  virtual bool has_targets() const { return false; }
  virtual index_t target_dim() const { return input_dim(); }
  // For reports and errors: "acts.npy (layer 4, position 3)", "3 shards in runs/acts/", ...
  virtual std::string describe() const = 0;
  // Whether rows are read from memory (no prefetching needed) rather than from a file's map.
  virtual bool in_memory() const { return false; }
  // What the data says it is (data/metadata.hpp): a file's or manifest's metadata with the true
  // rows, d_in and dtype filled in. Empty for rows made in memory.
  virtual DataMetadata metadata() const { return {}; }
  // What identifies the rows' content for fingerprints (io/fingerprint.hpp); null when nothing does.
  virtual io::Json fingerprint() const { return io::Json(); }

  // One row's inputs (or targets) into `out` (input_dim() or target_dim() values). Thread-safe.
  virtual void read_input_row(index_t row, Scalar* out) const = 0;
  virtual void read_target_row(index_t row, Scalar* out) const { read_input_row(row, out); }
  // Done with these rows for now: a mapped source drops their pages from the resident set, so
  // streaming a set larger than memory keeps a batch resident, not the set. Nothing in memory.
  virtual void release_rows(const index_t*, index_t) const {}

  // The listed rows, in order, into `out` (resized). Sources in memory override these with one copy.
  virtual void read_inputs(const index_t* rows, index_t count, Matrix<Scalar>& out) const {
    out.resize(count, input_dim());
    for (index_t i = 0; i < count; ++i) read_input_row(checked(rows[i]), out.row(i).data());
  }
  virtual void read_targets(const index_t* rows, index_t count, Matrix<Scalar>& out) const {
    if (!has_targets()) return read_inputs(rows, count, out);
    out.resize(count, target_dim());
    for (index_t i = 0; i < count; ++i) read_target_row(checked(rows[i]), out.row(i).data());
  }

 protected:
  index_t checked(index_t row) const {
    if (row < 0 || row >= rows())
      throw invalid_argument(describe() + ": row " + std::to_string(row) + " out of range [0, " + std::to_string(rows()) + ")");
    return row;
  }
};

template <class Scalar>
using RowSourcePtr = std::shared_ptr<const RowSource<Scalar>>;

// Rows [first, first + count) in order: the chunks a streaming pass reads.
inline std::vector<index_t> row_range(index_t first, index_t count) {
  std::vector<index_t> rows(static_cast<std::size_t>(count));
  for (index_t i = 0; i < count; ++i) rows[static_cast<std::size_t>(i)] = first + i;
  return rows;
}

// A matrix in memory, owned or borrowed (the caller keeps a borrowed one alive).
template <class Scalar>
class MatrixRows final : public RowSource<Scalar> {
 public:
  explicit MatrixRows(const Matrix<Scalar>& borrowed, std::string description = "rows in memory")
      : m_(&borrowed), description_(std::move(description)) {}
  // `fingerprint` and `metadata`: those of the file the rows were loaded from, if any.
  explicit MatrixRows(Matrix<Scalar>&& owned, std::string description = "rows in memory", io::Json fingerprint = {},
                      DataMetadata metadata = {})
      : owned_(std::make_shared<const Matrix<Scalar>>(std::move(owned))),
        m_(owned_.get()),
        description_(std::move(description)),
        fingerprint_(std::move(fingerprint)),
        metadata_(std::move(metadata)) {}

  index_t rows() const override { return m_->rows(); }
  index_t input_dim() const override { return m_->cols(); }
  std::string describe() const override { return description_; }
  bool in_memory() const override { return true; }
  DataMetadata metadata() const override { return metadata_; }
  io::Json fingerprint() const override { return fingerprint_; }
  void read_input_row(index_t row, Scalar* out) const override {
    std::copy_n(m_->row(this->checked(row)).data(), m_->cols(), out);
  }
  void read_inputs(const index_t* rows, index_t count, Matrix<Scalar>& out) const override {
    for (index_t i = 0; i < count; ++i) this->checked(rows[i]);
    gather_rows(*m_, rows, count, out);
  }
  const Matrix<Scalar>& matrix() const { return *m_; }

 private:
  std::shared_ptr<const Matrix<Scalar>> owned_;
  const Matrix<Scalar>* m_;
  std::string description_;
  io::Json fingerprint_;
  DataMetadata metadata_;
};

// One array of a file read through its memory map, in its stored dtype (f16, bf16, f32, f64)
// converted per row: a 2-D [N, D] array, or one (layer, position) of a 4-D [N, layers, positions, D]
// one as a strided view, never gathered. A non-finite value is refused with its file coordinates.
template <class Scalar>
class MappedRows final : public RowSource<Scalar> {
 public:
  // `hash_budget`: bytes of the file its fingerprint hashes (io::content_hash).
  explicit MappedRows(const std::string& spec, std::optional<LayerPosition> where = std::nullopt,
                      std::size_t hash_budget = io::detail::kWholeHashBytes)
      : MappedRows(std::make_shared<const io::ArrayFile>(spec), where, hash_budget) {}
  explicit MappedRows(std::shared_ptr<const io::ArrayFile> file, std::optional<LayerPosition> where = std::nullopt,
                      std::size_t hash_budget = io::detail::kWholeHashBytes)
      : file_(std::move(file)), where_(slice_or_default(*file_, where)), hash_budget_(hash_budget) {
    check_activation_array(*file_, where_);
    Scalar probe;  // the dtype is checked here, before any batch
    file_->read(0, 1, 1, &probe);
    metadata_.insert(file_->metadata().begin(), file_->metadata().end());
    if (where_) {  // a 4-D array's axes say which layer and position these rows are
      metadata_["layer"] = std::to_string(where_->layer);
      metadata_["position"] = std::to_string(where_->position);
    }
    reconcile_metadata(metadata_, file_->path(), rows(), input_dim(), file_->dtype());
  }

  index_t rows() const override { return file_->shape()[0]; }
  index_t input_dim() const override { return file_->shape().back(); }
  std::string describe() const override { return describe_source(file_->path(), where_); }
  void read_input_row(index_t row, Scalar* out) const override { read_activation_row(*file_, where_, row, out); }
  void release_rows(const index_t* rows, index_t count) const override {  // runs of consecutive rows at once
    for (index_t i = 0; i < count;) {
      index_t j = i + 1;
      while (j < count && rows[j] == rows[j - 1] + 1) ++j;
      const index_t d = input_dim();
      const auto start = [&](index_t r) { return where_ ? file_->offset({r, where_->layer, where_->position, 0}) : file_->offset({r, 0}); };
      file_->release(start(rows[i]), start(rows[j - 1]) + (d - 1) * file_->strides().back());
      i = j;
    }
  }
  DataMetadata metadata() const override { return metadata_; }
  io::Json fingerprint() const override {  // content, shape and slice, not the path: a moved copy still matches
    io::Json j = io::data_fingerprint(*file_, hash_budget_);
    if (where_) {
      j["layer"] = where_->layer;
      j["position"] = where_->position;
    }
    return j;
  }

  const io::ArrayFile& file() const { return *file_; }
  const std::optional<LayerPosition>& slice() const { return where_; }

 private:
  std::shared_ptr<const io::ArrayFile> file_;
  std::optional<LayerPosition> where_;
  std::size_t hash_budget_;
  DataMetadata metadata_;
};

// Sources of the same width one after another: a sharded data set. Each shard keeps its own errors
// (a bad value names the shard's file). The set's metadata is `set_metadata` (a manifest's) and
// the shards' own; a shard that contradicts it on an identity key or the dtype is refused by name.
template <class Scalar>
class ShardedRows final : public RowSource<Scalar> {
 public:
  ShardedRows(std::vector<RowSourcePtr<Scalar>> shards, std::string description, DataMetadata set_metadata = {})
      : shards_(std::move(shards)), description_(std::move(description)), metadata_(std::move(set_metadata)) {
    if (shards_.empty()) throw invalid_argument(description_ + ": no shards");
    end_.reserve(shards_.size());
    index_t total = 0;
    for (const auto& s : shards_) {
      if (s->input_dim() != shards_.front()->input_dim())
        throw io_error(s->describe(), "rows are " + std::to_string(s->input_dim()) + " wide but " +
                               shards_.front()->describe() + " has " + std::to_string(shards_.front()->input_dim()) +
                               "; every shard of a set must have the same width");
      if (s->has_targets() != shards_.front()->has_targets() || s->target_dim() != shards_.front()->target_dim())
        throw io_error(s->describe(), "its targets differ from " + shards_.front()->describe() + "'s");
      total += s->rows();
      end_.push_back(total);
      merge_shard_metadata(*s);
    }
    const auto dtype = metadata_.find("dtype");
    reconcile_metadata(metadata_, description_, total, input_dim(), dtype == metadata_.end() ? "" : dtype->second);
  }

  index_t rows() const override { return end_.back(); }
  index_t input_dim() const override { return shards_.front()->input_dim(); }
  bool has_targets() const override { return shards_.front()->has_targets(); }
  index_t target_dim() const override { return shards_.front()->target_dim(); }
  std::string describe() const override { return description_; }
  bool in_memory() const override {
    return std::all_of(shards_.begin(), shards_.end(), [](const auto& s) { return s->in_memory(); });
  }
  void read_input_row(index_t row, Scalar* out) const override {
    const auto [s, local] = locate(row);
    shards_[s]->read_input_row(local, out);
  }
  void read_target_row(index_t row, Scalar* out) const override {
    const auto [s, local] = locate(row);
    shards_[s]->read_target_row(local, out);
  }
  void release_rows(const index_t* rows, index_t count) const override {  // each shard's run of the rows at once
    std::vector<index_t> local;
    for (index_t i = 0; i < count;) {
      const std::size_t s = locate(rows[i]).first;
      local.clear();
      for (; i < count && locate(rows[i]).first == s; ++i) local.push_back(locate(rows[i]).second);
      shards_[s]->release_rows(local.data(), static_cast<index_t>(local.size()));
    }
  }
  DataMetadata metadata() const override { return metadata_; }
  io::Json fingerprint() const override {  // each shard's, in order
    io::Json shards = io::Json::array();
    for (const auto& s : shards_) shards.push_back(s->fingerprint());
    io::Json j = io::Json::object();
    j["shards"] = shards;
    return j;
  }
  const std::vector<RowSourcePtr<Scalar>>& shards() const { return shards_; }

 private:
  void merge_shard_metadata(const RowSource<Scalar>& shard) {
    DataMetadata own = shard.metadata();
    DataMetadata set = metadata_;
    if (set.count("dtype") && own.count("dtype") && dtype_name(set["dtype"]) != own["dtype"])
      throw io_error(shard.describe(), "its dtype is " + own["dtype"] + " but the set's metadata says " + set["dtype"]);
    const auto conflicts = metadata_conflicts(set, own);
    if (!conflicts.empty()) {
      std::string list;
      for (const auto& c : conflicts) list += (list.empty() ? "" : ", ") + c;
      throw io_error(shard.describe(), "its metadata contradicts the set's (set vs shard: " + list +
                                           "); every shard of a set must hold the same activations");
    }
    for (const auto& key : identity_keys())
      if (own.count(key)) metadata_.emplace(key, own[key]);
    for (const auto& [key, value] : own)  // the rest (source, ...) from the first shard that says it
      if (key != "rows") metadata_.emplace(key, value);
  }
  std::pair<std::size_t, index_t> locate(index_t row) const {
    this->checked(row);
    const auto s = static_cast<std::size_t>(std::upper_bound(end_.begin(), end_.end(), row) - end_.begin());
    return {s, row - (s == 0 ? 0 : end_[s - 1])};
  }
  std::vector<RowSourcePtr<Scalar>> shards_;
  std::vector<index_t> end_;  // cumulative row counts
  std::string description_;
  DataMetadata metadata_;
};

// Inputs from one source, targets from another with the same rows (layer L in, layer L + 1 out).
template <class Scalar>
class PairedRows final : public RowSource<Scalar> {
 public:
  PairedRows(RowSourcePtr<Scalar> inputs, RowSourcePtr<Scalar> targets) : in_(std::move(inputs)), out_(std::move(targets)) {
    if (in_->has_targets() || out_->has_targets()) throw invalid_argument("PairedRows: each side must be plain rows");
    if (in_->rows() != out_->rows())
      throw io_error(out_->describe(), "the targets have " + std::to_string(out_->rows()) + " rows but the inputs " +
                                           in_->describe() + " have " + std::to_string(in_->rows()) +
                                           " rows; paired rows must match one to one");
  }
  index_t rows() const override { return in_->rows(); }
  index_t input_dim() const override { return in_->input_dim(); }
  bool has_targets() const override { return true; }
  index_t target_dim() const override { return out_->input_dim(); }
  std::string describe() const override { return in_->describe() + " -> " + out_->describe(); }
  bool in_memory() const override { return in_->in_memory() && out_->in_memory(); }
  // The inputs' metadata, and the targets' identity as target_<key> ("target_layer": "5").
  DataMetadata metadata() const override {
    DataMetadata m = in_->metadata();
    for (const auto& [key, value] : out_->metadata())
      if (std::find(identity_keys().begin(), identity_keys().end(), key) != identity_keys().end()) m["target_" + key] = value;
    return m;
  }
  io::Json fingerprint() const override {
    io::Json j = in_->fingerprint();
    if (j.is_null()) j = io::Json::object();
    j["targets"] = out_->fingerprint();
    return j;
  }
  void read_input_row(index_t row, Scalar* out) const override { in_->read_input_row(row, out); }
  void read_target_row(index_t row, Scalar* out) const override { out_->read_input_row(row, out); }
  void release_rows(const index_t* rows, index_t count) const override {
    in_->release_rows(rows, count);
    out_->release_rows(rows, count);
  }
  void read_inputs(const index_t* rows, index_t count, Matrix<Scalar>& out) const override { in_->read_inputs(rows, count, out); }
  void read_targets(const index_t* rows, index_t count, Matrix<Scalar>& out) const override {
    out_->read_inputs(rows, count, out);
  }

 private:
  RowSourcePtr<Scalar> in_, out_;
};

// The rows of `base` at the listed indices, in that order: a split is a view, not a copy.
template <class Scalar>
class SelectedRows final : public RowSource<Scalar> {
 public:
  SelectedRows(RowSourcePtr<Scalar> base, std::vector<index_t> rows, std::string name = "")
      : base_(std::move(base)), rows_(std::move(rows)), name_(std::move(name)) {
    for (index_t r : rows_)
      if (r < 0 || r >= base_->rows())
        throw invalid_argument(base_->describe() + ": selected row " + std::to_string(r) + " out of range [0, " +
                               std::to_string(base_->rows()) + ")");
  }
  index_t rows() const override { return static_cast<index_t>(rows_.size()); }
  index_t input_dim() const override { return base_->input_dim(); }
  bool has_targets() const override { return base_->has_targets(); }
  index_t target_dim() const override { return base_->target_dim(); }
  std::string describe() const override { return name_.empty() ? base_->describe() : name_ + " of " + base_->describe(); }
  bool in_memory() const override { return base_->in_memory(); }
  DataMetadata metadata() const override { return base_->metadata(); }  // the data set's, whatever rows are picked
  io::Json fingerprint() const override { return base_->fingerprint(); }
  void read_input_row(index_t row, Scalar* out) const override { base_->read_input_row(rows_[pos(row)], out); }
  void read_target_row(index_t row, Scalar* out) const override { base_->read_target_row(rows_[pos(row)], out); }
  void release_rows(const index_t* rows, index_t count) const override {
    const auto mapped = map(rows, count);
    base_->release_rows(mapped.data(), count);
  }
  void read_inputs(const index_t* rows, index_t count, Matrix<Scalar>& out) const override {
    const auto mapped = map(rows, count);
    base_->read_inputs(mapped.data(), count, out);
  }
  void read_targets(const index_t* rows, index_t count, Matrix<Scalar>& out) const override {
    const auto mapped = map(rows, count);
    base_->read_targets(mapped.data(), count, out);
  }
  // The row of the base source behind each row of this view.
  const std::vector<index_t>& base_rows() const { return rows_; }

 private:
  std::size_t pos(index_t row) const { return static_cast<std::size_t>(this->checked(row)); }
  std::vector<index_t> map(const index_t* rows, index_t count) const {
    std::vector<index_t> mapped(static_cast<std::size_t>(count));
    for (index_t i = 0; i < count; ++i) mapped[static_cast<std::size_t>(i)] = rows_[pos(rows[i])];
    return mapped;
  }
  RowSourcePtr<Scalar> base_;
  std::vector<index_t> rows_;
  std::string name_;
};

// Every row of `source` in one matrix (inputs), e.g. to score a small validation set at once.
template <class Scalar>
Matrix<Scalar> read_all_inputs(const RowSource<Scalar>& source) {
  Matrix<Scalar> out;
  const auto rows = row_range(0, source.rows());
  source.read_inputs(rows.data(), source.rows(), out);
  return out;
}

}  // namespace sae::data
