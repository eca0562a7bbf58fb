// The architecture registry: the one list of the SAE classes we train, which checkpoints (load any),
// sae-convert, the programs' --arch, and the tests iterate over. A new architecture is one header
// and one line in `Architectures` below.
#pragma once

#include <sae/core/error.hpp>
#include <sae/model/batch_topk_autoencoder.hpp>
#include <sae/model/checkpoint.hpp>
#include <sae/model/jumprelu_autoencoder.hpp>
#include <sae/model/matryoshka_autoencoder.hpp>
#include <sae/model/topk_autoencoder.hpp>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace sae {

template <class... Models>
struct ModelList {
  using variant = std::variant<Models...>;
  static constexpr std::size_t size = sizeof...(Models);
};

// Every architecture, in the order programs list them.
template <class Scalar>
using Architectures = ModelList<TopKAutoencoder<Scalar>, BatchTopKAutoencoder<Scalar>, JumpReluAutoencoder<Scalar>,
                                MatryoshkaAutoencoder<Scalar>>;

// Any one model of the registry.
template <class Scalar>
using AnyModel = typename Architectures<Scalar>::variant;

// A type carried as a value, so a generic lambda can name the model it is handed.
template <class T>
struct type_tag {
  using type = T;
};

namespace registry_detail {
template <class... Models, class F>
void for_each(ModelList<Models...>, F&& f) {
  (f(type_tag<Models>{}), ...);
}
}  // namespace registry_detail

// Calls f(type_tag<Model>{}) for every registered architecture.
template <class Scalar = float, class F>
void for_each_architecture(F&& f) {
  registry_detail::for_each(Architectures<Scalar>{}, std::forward<F>(f));
}

// The registered names ("topk", "batchtopk", ...).
inline std::vector<std::string> architecture_names() {
  std::vector<std::string> names;
  for_each_architecture([&](auto tag) { names.emplace_back(decltype(tag)::type::architecture); });
  return names;
}

// "'topk', 'batchtopk', 'jumprelu' or 'matryoshka'", for messages.
inline std::string architecture_choices(const std::vector<std::string>& names = architecture_names()) {
  std::string s;
  for (std::size_t i = 0; i < names.size(); ++i)
    s += std::string(i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + "'" + names[i] + "'";
  return s;
}

// Calls f(type_tag<Model>{}) for the architecture named `name` and returns its result; an
// unknown name is an invalid_argument listing the registered ones.
template <class Scalar = float, class F>
decltype(auto) with_architecture(const std::string& name, F&& f) {
  using Result = decltype(f(type_tag<TopKAutoencoder<Scalar>>{}));
  if constexpr (std::is_void_v<Result>) {
    bool found = false;
    for_each_architecture<Scalar>([&](auto tag) {
      if (!found && name == decltype(tag)::type::architecture) found = true, f(tag);
    });
    if (!found) throw invalid_argument("expected " + architecture_choices() + ", got '" + name + "'");
  } else {
    std::optional<Result> out;
    for_each_architecture<Scalar>([&](auto tag) {
      if (!out && name == decltype(tag)::type::architecture) out.emplace(f(tag));
    });
    if (!out) throw invalid_argument("expected " + architecture_choices() + ", got '" + name + "'");
    return Result(std::move(*out));
  }
}

// The checkpoint in `dir`, whichever registered architecture it holds.
template <class Scalar = float>
AnyModel<Scalar> load_any_checkpoint(const std::filesystem::path& dir) {
  const std::string arch = checkpoint_architecture(dir);
  const auto names = architecture_names();
  if (std::find(names.begin(), names.end(), arch) == names.end())
    throw io_error((dir / "config.json").string(), "unknown architecture '" + arch + "' (this version reads " +
                                                       architecture_choices() + ")");
  return with_architecture<Scalar>(arch, [&](auto tag) { return AnyModel<Scalar>(load_model<typename decltype(tag)::type>(dir)); });
}

}  // namespace sae
