// Sparse decode and the sparse backward pass on the CPU. Only the k selected latents per row are
// touched; the dense cost of a training step stays in the encoder GEMM.
#pragma once

#include <sae/config.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/core/row_sparse.hpp>
#include <sae/core/sparse_codes.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace sae::ops {

namespace detail {
// Columns (a multiple of 16) of `rows` rows that fit in `floats` floats: a cache-sized column chunk.
inline index_t columns_fitting(index_t floats, index_t rows) { return floats / std::max<index_t>(rows, 1) / 16 * 16; }
}  // namespace detail

// x_hat[i] = sum_s values[i,s] * w_dec[indices[i,s]] (+ b_dec)
template <class Scalar>
void sparse_decode(cpu, const SparseCodes<Scalar>& codes, const Matrix<Scalar>& w_dec, const Vector<Scalar>* b_dec,
                   Matrix<Scalar>& x_hat) {
  const index_t d = w_dec.cols();
  x_hat.resize(codes.rows, d);
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t i = 0; i < codes.rows; ++i) {
    auto out = x_hat.row(i);
    if (b_dec) out = b_dec->transpose();
    else out.setZero();
    const std::int32_t* idx = codes.row_indices(i);
    const Scalar* val = codes.row_values(i);
    for (index_t s = 0; s < codes.k; ++s)
      if (val[s] != Scalar(0)) out.noalias() += val[s] * w_dec.row(idx[s]);
  }
}

// Codes regrouped by latent (CSR over latents), built by a stable counting sort so every latent
// sees its samples in ascending order: sums over samples are then independent of thread count.
struct LatentMajor {
  std::vector<std::int32_t> latents;  // latents selected by at least one sample with a nonzero gradient path
  std::vector<std::int64_t> start;    // [latents.size() + 1] offsets into entry
  std::vector<std::int64_t> entry;    // flat (row * k + slot) positions into the codes
  // Only when adding to existing gradients: the gradient row of each latent (row_of, [F], -1 when
  // absent), and where each listed latent's sums go.
  std::vector<std::int32_t> row_of, target;
};

// Only slots whose value passed ReLU carry gradient, so only those are grouped.
template <class Scalar>
void group_by_latent(const SparseCodes<Scalar>& codes, LatentMajor& out) {
  const index_t f = codes.num_latents;
  std::vector<std::int64_t> count(static_cast<std::size_t>(f) + 1, 0);
  const std::int64_t n = codes.rows * codes.k;
  for (std::int64_t e = 0; e < n; ++e)
    if (codes.values[static_cast<std::size_t>(e)] > Scalar(0)) ++count[static_cast<std::size_t>(codes.indices[e]) + 1];
  out.latents.clear();
  std::vector<std::int64_t> slot_start(static_cast<std::size_t>(f) + 1, 0);
  for (index_t j = 0; j < f; ++j) slot_start[j + 1] = slot_start[j] + count[j + 1];
  out.start.clear();
  for (index_t j = 0; j < f; ++j)
    if (count[j + 1] > 0) {
      out.latents.push_back(static_cast<std::int32_t>(j));
      out.start.push_back(slot_start[j]);
    }
  out.start.push_back(slot_start[f]);
  out.entry.resize(static_cast<std::size_t>(slot_start[f]));
  for (std::int64_t e = 0; e < n; ++e)
    if (codes.values[static_cast<std::size_t>(e)] > Scalar(0))
      out.entry[static_cast<std::size_t>(slot_start[codes.indices[e]]++)] = e;
}

// The second half of the sparse backward pass, given the code gradients dcode (one per slot) and
// the upstream gradient row u(i, j) = dL/dx_hat seen by latent j of sample i (one matrix for TopK;
// for Matryoshka it depends on j's group):
//   dw_dec[j]  = sum_i z[i,j] * u(i, j)
//   dw_enc[j]  = sum_i dcode[i,j] * x_in[i]
//   db_enc[j]  = sum_i dcode[i,j]
// where inactive slots (value 0) carry no gradient. Rows of dw_* are only the touched latents.
// With `add`, the sums are added to the gradients already there (same rows in dw_enc and dw_dec):
// a latent with a row gets added to it, the others get new rows appended (so the row list is then
// no longer ascending; the optimizers do not need it to be).
namespace detail {
template <class Scalar, class Upstream>
void weight_gradients(const SparseCodes<Scalar>& codes, Upstream&& upstream, const Matrix<Scalar>& x_in,
                      LatentMajor& groups, const std::vector<Scalar>& dcode, RowSparse<Scalar>& dw_enc,
                      Vector<Scalar>& db_enc, RowSparse<Scalar>& dw_dec, bool add = false) {
  const index_t k = codes.k, d = x_in.cols();
  group_by_latent(codes, groups);
  const auto touched = static_cast<index_t>(groups.latents.size());
  std::size_t existing = 0;  // rows already there (with `add`)
  if (!add) {
    for (RowSparse<Scalar>* r : {&dw_enc, &dw_dec}) {
      r->total_rows = codes.num_latents;
      r->rows = groups.latents;
      r->reserve_rows(touched, d);
    }
    db_enc.setZero(codes.num_latents);
  } else {
    sae::detail::require(dw_enc.rows == dw_dec.rows && dw_enc.total_rows == codes.num_latents &&
                             db_enc.size() == codes.num_latents && (dw_enc.rows.empty() || dw_enc.cols() == d),
                         "add_sparse_weight_gradients()", "the gradients to add to do not match the codes");
    existing = dw_enc.rows.size();
    groups.row_of.assign(static_cast<std::size_t>(codes.num_latents), -1);
    for (std::size_t r = 0; r < existing; ++r) groups.row_of[static_cast<std::size_t>(dw_enc.rows[r])] = static_cast<std::int32_t>(r);
    groups.target.resize(static_cast<std::size_t>(touched));
    for (index_t t = 0; t < touched; ++t) {
      const std::int32_t j = groups.latents[static_cast<std::size_t>(t)];
      std::int32_t& row = groups.row_of[static_cast<std::size_t>(j)];
      if (row < 0) {
        row = static_cast<std::int32_t>(dw_enc.rows.size());
        dw_enc.rows.push_back(j), dw_dec.rows.push_back(j);
      }
      groups.target[static_cast<std::size_t>(t)] = row;
    }
    const auto needed = static_cast<index_t>(dw_enc.rows.size());
    for (RowSparse<Scalar>* r : {&dw_enc, &dw_dec})
      if (r->values.rows() < needed || r->values.cols() != d) r->values.conservativeResize(std::max(needed, r->total_rows), d);
  }
  // Column chunks of about 512 KB of x_in (and as much of the upstream rows), so every latent's sum
  // reads them from L2 rather than L3; each element's sum keeps its order, so chunking changes no bit.
  // Only worth its extra passes when latents sum over many samples each.
  const bool many = codes.rows * codes.k >= 8 * std::max<index_t>(touched, 1);
  const index_t chunk = many ? std::min(d, std::max<index_t>(64, detail::columns_fitting(index_t(1) << 17, codes.rows))) : d;
  for (index_t c0 = 0; c0 < d; c0 += chunk) {
    const index_t len = std::min(chunk, d - c0);
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(dynamic, 8)
#endif
    for (index_t t = 0; t < touched; ++t) {
      const std::int32_t j = groups.latents[static_cast<std::size_t>(t)];
      const index_t row = add ? groups.target[static_cast<std::size_t>(t)] : t;
      const bool onto = add && static_cast<std::size_t>(row) < existing;  // add to a row already there
      auto enc = dw_enc.values.row(row).segment(c0, len);
      auto dec = dw_dec.values.row(row).segment(c0, len);
      const std::int64_t begin = groups.start[t], end = groups.start[t + 1];
      const auto sample = [&](std::int64_t p) { return groups.entry[static_cast<std::size_t>(p)] / k; };
      const auto dc = [&](std::int64_t p) { return dcode[static_cast<std::size_t>(groups.entry[static_cast<std::size_t>(p)])]; };
      const auto z = [&](std::int64_t p) { return codes.values[static_cast<std::size_t>(groups.entry[static_cast<std::size_t>(p)])]; };
      const auto x = [&](std::int64_t p) { return x_in.row(sample(p)).segment(c0, len); };
      const auto u = [&](std::int64_t p) { return upstream(sample(p), j).segment(c0, len); };
      // Every listed latent has at least one entry: the first one initialises a new row (no zeroing
      // pass); then four entries per pass over the rows (one load and store of them per four FMAs).
      if (onto) {
        dec.noalias() += z(begin) * u(begin);
        enc.noalias() += dc(begin) * x(begin);
      } else {
        dec.noalias() = z(begin) * u(begin);
        enc.noalias() = dc(begin) * x(begin);
      }
      std::int64_t p = begin + 1;
      for (; p + 4 <= end; p += 4) {
        dec.noalias() += z(p) * u(p) + z(p + 1) * u(p + 1) + z(p + 2) * u(p + 2) + z(p + 3) * u(p + 3);
        enc.noalias() += dc(p) * x(p) + dc(p + 1) * x(p + 1) + dc(p + 2) * x(p + 2) + dc(p + 3) * x(p + 3);
      }
      for (; p < end; ++p) {
        dec.noalias() += z(p) * u(p);
        enc.noalias() += dc(p) * x(p);
      }
      if (c0 == 0) {
        Scalar bias = 0;
        for (std::int64_t q = begin; q < end; ++q) bias += dc(q);
        if (add) db_enc[j] += bias;
        else db_enc[j] = bias;
      }
    }
  }
}
}  // namespace detail

// sparse_weight_gradients with one upstream gradient g = dL/dx_hat for every latent (TopK).
template <class Scalar>
void sparse_weight_gradients(cpu, const SparseCodes<Scalar>& codes, const Matrix<Scalar>& g, const Matrix<Scalar>& x_in,
                             LatentMajor& groups, const std::vector<Scalar>& dcode, RowSparse<Scalar>& dw_enc,
                             Vector<Scalar>& db_enc, RowSparse<Scalar>& dw_dec) {
  detail::weight_gradients(codes, [&g](index_t i, std::int32_t) { return g.row(i); }, x_in, groups, dcode, dw_enc, db_enc,
                           dw_dec);
}

// sparse_weight_gradients added to the gradients already in dw_enc, db_enc, dw_dec (AuxK's second
// set of codes); rows not there yet are appended.
template <class Scalar>
void add_sparse_weight_gradients(cpu, const SparseCodes<Scalar>& codes, const Matrix<Scalar>& g, const Matrix<Scalar>& x_in,
                                 LatentMajor& groups, const std::vector<Scalar>& dcode, RowSparse<Scalar>& dw_enc,
                                 Vector<Scalar>& db_enc, RowSparse<Scalar>& dw_dec) {
  detail::weight_gradients(codes, [&g](index_t i, std::int32_t) { return g.row(i); }, x_in, groups, dcode, dw_enc, db_enc,
                           dw_dec, true);
}

// The whole sparse backward pass for a per-latent upstream gradient u(i, j): the code gradients
//   dcode[e] = u(i, j) . w_dec[j]   for each active slot e = (i, s) with latent j,
// then sparse_weight_gradients.
template <class Scalar, class Upstream>
void sparse_backward_per_latent(cpu, const SparseCodes<Scalar>& codes, Upstream&& upstream, const Matrix<Scalar>& x_in,
                                const Matrix<Scalar>& w_dec, LatentMajor& groups, std::vector<Scalar>& dcode,
                                RowSparse<Scalar>& dw_enc, Vector<Scalar>& db_enc, RowSparse<Scalar>& dw_dec) {
  const index_t rows = codes.rows, k = codes.k;
  dcode.assign(static_cast<std::size_t>(rows * k), Scalar(0));
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t i = 0; i < rows; ++i)
    for (index_t s = 0; s < k; ++s)
      if (codes.row_values(i)[s] > Scalar(0)) {
        const std::int32_t j = codes.row_indices(i)[s];
        dcode[static_cast<std::size_t>(i * k + s)] = upstream(i, j).dot(w_dec.row(j));
      }
  detail::weight_gradients(codes, upstream, x_in, groups, dcode, dw_enc, db_enc, dw_dec);
}

// TopK's forward decode and the first half of its backward pass, fused per row while that row's
// decoder rows are still in cache:
//   x_hat[i] = sum_s z[i,s] w_dec[j] (+ b_dec),  g[i] = scale * (x_hat[i] - x[i]),  dcode[i,s] = g[i] . w_dec[j].
// With many selections per latent (large K) the columns go in chunks whose slice of W_dec stays in
// L2 for every row (the dot products then sum over chunks in order). Returns
// sum_i ||x_hat[i] - x[i]||^2, summed in double in a fixed order (thread-count independent).
template <class Scalar>
double decode_with_code_gradients(cpu, const SparseCodes<Scalar>& codes, const Matrix<Scalar>& w_dec,
                                  const Vector<Scalar>* b_dec, const Matrix<Scalar>& x, Scalar scale,
                                  Matrix<Scalar>& x_hat, Matrix<Scalar>& g, std::vector<Scalar>& dcode) {
  const index_t rows = codes.rows, k = codes.k, f = w_dec.rows(), d = w_dec.cols();
  x_hat.resize(rows, d);
  g.resize(rows, d);
  dcode.assign(static_cast<std::size_t>(rows * k), Scalar(0));
  std::vector<double> row_sse(static_cast<std::size_t>(rows), 0.0);
  const index_t fitting = detail::columns_fitting(index_t(1) << 18, f);  // 1 MB of W_dec columns
  const index_t chunk = rows * k >= 8 * f && fitting >= 512 ? std::min(d, fitting) : d;
  for (index_t c0 = 0; c0 < d; c0 += chunk) {
    const index_t len = std::min(chunk, d - c0);
    const auto w = [&](std::int32_t j) { return w_dec.row(j).segment(c0, len); };
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (index_t i = 0; i < rows; ++i) {
      auto out = x_hat.row(i).segment(c0, len);
      if (b_dec) out = b_dec->segment(c0, len).transpose();
      else out.setZero();
      const std::int32_t* idx = codes.row_indices(i);
      const Scalar* val = codes.row_values(i);
      // Slots past the row's last active one are padding (codes of varying width) or ReLU zeros:
      // the groups of four stop at the first group wholly past it, so TopK's sums are unchanged.
      index_t used = k;
      while (used > 0 && val[used - 1] == Scalar(0)) --used;
      const index_t grouped = std::min(k, (used + 3) / 4 * 4);
      index_t s = 0;
      // Four decoder rows per pass over x_hat[i]: one load and store of it per four FMAs.
      for (; s + 4 <= grouped; s += 4)
        out.noalias() += val[s] * w(idx[s]) + val[s + 1] * w(idx[s + 1]) + val[s + 2] * w(idx[s + 2]) +
                         val[s + 3] * w(idx[s + 3]);
      for (; s < used; ++s)
        if (val[s] != Scalar(0)) out.noalias() += val[s] * w(idx[s]);
      auto gi = g.row(i).segment(c0, len);
      gi = out - x.row(i).segment(c0, len);
      row_sse[static_cast<std::size_t>(i)] += gi.template cast<double>().squaredNorm();
      gi *= scale;
      for (index_t s = 0; s < used; ++s)
        if (val[s] > Scalar(0)) dcode[static_cast<std::size_t>(i * k + s)] += gi.dot(w(idx[s]));
    }
  }
  double sse = 0;
  for (const double r : row_sse) sse += r;
  return sse;
}

// dL/db_dec when the decoder bias is on, given the upstream gradient dL/dx_hat (the prefix-0 one
// for Matryoshka): directly through x_hat (its row sum) and through the encoder input x - b_dec
// (d pre_j / d b_dec = -w_enc[j]).
template <class Scalar>
void decoder_bias_gradient(cpu, const Matrix<Scalar>& upstream, const SparseCodes<Scalar>& codes,
                           const std::vector<Scalar>& dcode, const Matrix<Scalar>& w_enc, Vector<Scalar>& out) {
  out = upstream.colwise().sum().transpose();
  for (std::size_t e = 0; e < dcode.size(); ++e)
    if (dcode[e] != Scalar(0)) out.noalias() -= dcode[e] * w_enc.row(codes.indices[e]).transpose();
}

}  // namespace sae::ops
