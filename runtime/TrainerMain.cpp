// The trainer program that `cnnc NET.net --emit trainer` writes: a command
// line over one network's generated library.
//
//   NET train   --data DATA [--epochs N] [--batch N] [--lr X] [--seed N]
//               [--save W.safetensors] [--checkpoint CKPT | --no-checkpoint]
//               [--resume CKPT] [--log metrics.csv] [--progress MODE]
//   NET eval    --data DATA --load W.safetensors [--batch N]
//   NET predict --load W.safetensors [--top K] IMAGE.png ...
//
// Generic: cnnc compiles it with two macros defined ahead of it, the
// network's header (CNNC_NETWORK_HEADER, a quoted path) and its namespace
// (CNNC_NAMESPACE), and links it with the network's library and libpng.
// Plain C++17.
#ifndef CNNC_NETWORK_HEADER
#error "define CNNC_NETWORK_HEADER as the quoted path of the network's header"
#endif
#ifndef CNNC_NAMESPACE
#error "define CNNC_NAMESPACE as the network's namespace"
#endif

#include CNNC_NETWORK_HEADER

#include <png.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <vector>

namespace net = CNNC_NAMESPACE;

namespace {

const cnnc::NetworkInfo& network() {
  return net::kNetwork;
}
std::string networkName() {
  return network().name;
}

// A mistake on the command line: the message, then a pointer to --help.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// --help anywhere: the usage on stdout, exit status 0.
struct HelpRequested {};

// The usage text, with NET standing for the network's name.
const char* const kUsage = R"(usage:
  NET train   --data DATA [options]    train, then save the weights
  NET eval    --data DATA --load W     loss, accuracy and confusion matrix of
                                       DATA's test set
  NET predict --load W IMAGE.png ...   the class of each image
  NET --help

DATA is mnist, fashion-mnist or cifar10 (their installed locations, or
$CNNC_DATA/NAME), or a directory of IDX files (train-images-idx3-ubyte[.gz],
train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz],
t10k-labels-idx1-ubyte[.gz]) or of CIFAR-10 binary batches.

train options (defaults: the .net file's train settings):
  --epochs N          epochs to train (in all, counting a resumed run's)
  --batch N           minibatch size
  --lr X              initial learning rate
  --seed N            initialization, shuffling and dropout seed
  --save W            where to save the final weights (default NET.safetensors)
  --checkpoint CKPT   the checkpoint written after every epoch (default: W
                      with .ckpt.safetensors for .safetensors)
  --no-checkpoint     write no checkpoint
  --resume CKPT       continue an interrupted run from its checkpoint
  --log FILE          the metrics CSV, one row per epoch
  --progress MODE     auto (a bar on a terminal, else lines), bar, lines or none

eval options:
  --batch N           examples per forward pass (default 256)

predict options:
  --top K             probabilities shown per image (default 3)
  An image is a PNG of the network's height x width, gray or RGB (alpha is
  composited on black); it is converted to the network's channels (RGB to
  gray by luminance 0.299 R + 0.587 G + 0.114 B, gray to RGB by repeating)
  and scaled to [0,1].

exit status: 0 success, 1 an error (bad usage, a missing or malformed file).
)";

std::string usage() {
  std::string text = kUsage, name = networkName();
  for (size_t at = text.find("NET"); at != std::string::npos;
       at = text.find("NET", at + name.size()))
    text.replace(at, 3, name);
  return text;
}

// The options of one command: `--name value` pairs and bare flags, then the
// positional arguments.
struct Arguments {
  std::map<std::string, std::string> values;
  std::set<std::string> flags;
  std::vector<std::string> positional;

  bool has(const std::string& name) const { return values.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const {
    auto found = values.find(name);
    return found == values.end() ? fallback : found->second;
  }
};

Arguments parseArguments(const std::string& command, const std::vector<std::string>& args,
                         const std::set<std::string>& valued, const std::set<std::string>& flags,
                         bool positionalAllowed) {
  Arguments parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") throw HelpRequested{};
    if (arg.size() > 1 && arg[0] == '-') {
      if (valued.count(arg)) {
        if (i + 1 >= args.size()) throw UsageError("option " + arg + " needs a value");
        if (parsed.values.count(arg)) throw UsageError("option " + arg + " given twice");
        parsed.values[arg] = args[++i];
      } else if (flags.count(arg)) {
        parsed.flags.insert(arg);
      } else {
        throw UsageError("unknown option '" + arg + "' for " + command);
      }
    } else if (positionalAllowed) {
      parsed.positional.push_back(arg);
    } else {
      throw UsageError("unexpected argument '" + arg + "' for " + command);
    }
  }
  return parsed;
}

void require(const Arguments& args, const std::string& command, const std::string& option) {
  if (!args.has(option)) throw UsageError(command + " needs " + option);
}

// A whole decimal integer in [low, high], or a UsageError naming the option.
long long integerOption(const Arguments& args, const std::string& option, long long low,
                        long long high) {
  const std::string text = args.get(option);
  errno = 0;
  char* end = nullptr;
  long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || value < low || value > high)
    throw UsageError("option " + option + " takes an integer in [" + std::to_string(low) + ", " +
                     std::to_string(high) + "], not '" + text + "'");
  return value;
}

double positiveOption(const Arguments& args, const std::string& option) {
  const std::string text = args.get(option);
  errno = 0;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(value) || value <= 0)
    throw UsageError("option " + option + " takes a positive number, not '" + text + "'");
  return value;
}

std::string percent(double fraction) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4f (%.2f%%)", fraction, 100 * fraction);
  return text;
}

bool endsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// ---- train ----

int train(const std::vector<std::string>& rawArgs) {
  Arguments args = parseArguments("train", rawArgs,
                                  {"--data", "--epochs", "--batch", "--lr", "--seed", "--save",
                                   "--checkpoint", "--resume", "--log", "--progress"},
                                  {"--no-checkpoint"}, false);
  require(args, "train", "--data");
  if (args.has("--checkpoint") && args.flags.count("--no-checkpoint"))
    throw UsageError("--checkpoint and --no-checkpoint exclude each other");
  const cnnc::TrainConfig* config = network().train;
  if (!config)
    throw cnnc::Error("network '" + networkName() +
                      "' has no train settings: add a `train` statement (loss=..., "
                      "optimizer=...) to its .net file and compile it again");

  cnnc::TrainOptions options;
  if (args.has("--epochs")) options.epochs = int(integerOption(args, "--epochs", 1, 1000000));
  if (args.has("--batch")) options.batch = int(integerOption(args, "--batch", 1, 1 << 20));
  if (args.has("--lr")) options.lr = positiveOption(args, "--lr");
  if (args.has("--seed")) options.seed = integerOption(args, "--seed", 0, INT64_MAX);
  const std::string savePath = args.get("--save", networkName() + ".safetensors");
  if (!args.flags.count("--no-checkpoint")) {
    std::string stem = endsWith(savePath, ".safetensors")
                           ? savePath.substr(0, savePath.size() - std::strlen(".safetensors"))
                           : savePath;
    options.checkpoint = args.get("--checkpoint", stem + ".ckpt.safetensors");
  }
  options.resume = args.get("--resume");
  options.metrics = args.get("--log");
  const std::string progress = args.get("--progress", "auto");
  if (progress == "auto")
    options.progress = cnnc::TrainOptions::Progress::Auto;
  else if (progress == "bar")
    options.progress = cnnc::TrainOptions::Progress::Bar;
  else if (progress == "lines")
    options.progress = cnnc::TrainOptions::Progress::Lines;
  else if (progress == "none")
    options.progress = cnnc::TrainOptions::Progress::None;
  else
    throw UsageError("option --progress takes auto, bar, lines or none, not '" + progress + "'");

  const std::string spec = args.get("--data");
  cnnc::DatasetSplit data = cnnc::loadDataset(spec);
  const cnnc::Dataset* test = data.test.count > 0 ? &data.test : nullptr;
  std::cerr << networkName() << ": " << spec << ": " << data.train.count << " training and "
            << data.test.count << " test images of " << data.train.channels << "x"
            << data.train.height << "x" << data.train.width << "\n";

  // The seed draws the initial weights too (a resumed run's come from its checkpoint).
  uint64_t seed = options.seed >= 0 ? uint64_t(options.seed) : config->seed;
  net::Model model(seed);
  std::vector<cnnc::EpochMetrics> history = model.train(data.train, test, options);
  model.save(savePath);

  double testAccuracy = std::nan(""), testLoss = std::nan("");
  if (!history.empty()) {
    testAccuracy = history.back().testAccuracy;
    testLoss = history.back().testLoss;
  } else if (test) {
    cnnc::Evaluation evaluation = model.evaluate(*test);  // a resumed run that had nothing left
    testAccuracy = evaluation.accuracy;
    testLoss = evaluation.loss;
  }
  double rate = 0, seconds = 0;
  for (const cnnc::EpochMetrics& epoch : history) {
    rate += epoch.imagesPerSecond;
    seconds += epoch.seconds;
  }
  if (!history.empty()) rate /= double(history.size());

  std::printf("epochs run: %zu (%.1f s)\n", history.size(), seconds);
  if (test) {
    std::printf("test accuracy: %s\n", percent(testAccuracy).c_str());
    std::printf("test loss: %.4f\n", testLoss);
  } else {
    std::printf("test accuracy: n/a (%s has no test set)\n", spec.c_str());
  }
  std::printf("images/s: %.0f (training, mean over the epochs run)\n", rate);
  std::printf("saved weights to %s\n", savePath.c_str());
  if (!options.checkpoint.empty()) std::printf("checkpoint: %s\n", options.checkpoint.c_str());
  return 0;
}

// ---- eval ----

int eval(const std::vector<std::string>& rawArgs) {
  Arguments args = parseArguments("eval", rawArgs, {"--data", "--load", "--batch"}, {}, false);
  require(args, "eval", "--data");
  require(args, "eval", "--load");
  int batch = args.has("--batch") ? int(integerOption(args, "--batch", 1, 1 << 20)) : 256;
  net::Model model(0);
  model.load(args.get("--load"));  // before the dataset: a bad file fails fast
  const std::string spec = args.get("--data");
  cnnc::DatasetSplit data = cnnc::loadDataset(spec);
  if (data.test.count < 1) throw cnnc::Error("dataset '" + spec + "' has no test set to evaluate");
  cnnc::Evaluation evaluation = model.evaluate(data.test, batch);
  std::printf("%s on %s: %lld test images\n", networkName().c_str(), data.test.name.c_str(),
              static_cast<long long>(evaluation.count));
  std::printf("test loss: %.4f\n", evaluation.loss);
  std::printf("test accuracy: %s\n", percent(evaluation.accuracy).c_str());
  std::printf("confusion matrix (rows: true class, columns: predicted class):\n%s",
              evaluation.confusionTable().c_str());
  return 0;
}

// ---- predict ----

// The input shape predict fills: an image network's, or for a flat input the
// gray (H*W) or RGB (3*H*W) image whose pixels it takes.
struct ImageShape {
  int channels, height, width;  // height/width 0: any image of channels*H*W == flat size
};

ImageShape networkImageShape() {
  const cnnc::NetworkInfo& info = network();
  if (info.inputRank == 3)
    return {int(info.inputShape[0]), int(info.inputShape[1]), int(info.inputShape[2])};
  return {0, 0, 0};
}

// Reads a PNG (any bit depth or color type libpng knows) as NCHW floats in
// [0,1] of the network's input shape.
std::vector<float> readImage(const std::string& path) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str()))
    throw cnnc::Error("cannot read image '" + path + "': " + image.message);
  const bool sourceIsColor = (image.format & PNG_FORMAT_FLAG_COLOR) != 0;
  const int height = int(image.height), width = int(image.width);

  ImageShape shape = networkImageShape();
  if (shape.channels == 0) {
    // A flat input: as many features as a gray or an RGB image has values.
    int64_t features = network().inputSize, pixels = int64_t(height) * width;
    if (features == pixels)
      shape = {1, height, width};
    else if (features == 3 * pixels)
      shape = {3, height, width};
    else {
      png_image_free(&image);
      throw cnnc::Error("image '" + path + "' is " + std::to_string(height) + "x" +
                        std::to_string(width) + " (" + std::to_string(pixels) +
                        " pixels); network '" + networkName() + "' takes " +
                        std::to_string(features) + " features");
    }
  }
  if (height != shape.height || width != shape.width) {
    png_image_free(&image);
    throw cnnc::Error("image '" + path + "' is " + std::to_string(height) + "x" +
                      std::to_string(width) + " (height x width); network '" + networkName() +
                      "' takes " + std::to_string(shape.height) + "x" +
                      std::to_string(shape.width));
  }
  if (shape.channels != 1 && shape.channels != 3) {
    png_image_free(&image);
    throw cnnc::Error("network '" + networkName() + "' takes " + std::to_string(shape.channels) +
                      "-channel images; predict reads only gray or RGB images");
  }

  // A gray source read as gray keeps its values exactly; a color one is read
  // as RGB and, for a gray network, reduced by luminance here.
  const int stored = sourceIsColor ? 3 : 1;
  image.format = sourceIsColor ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  std::vector<png_byte> pixels(size_t(height) * width * stored, 0);  // zeros: alpha onto black
  if (!png_image_finish_read(&image, nullptr, pixels.data(), 0, nullptr)) {
    std::string message = image.message;
    png_image_free(&image);
    throw cnnc::Error("cannot read image '" + path + "': " + message);
  }

  const size_t plane = size_t(height) * width;
  std::vector<float> example(plane * size_t(shape.channels));
  for (size_t p = 0; p < plane; ++p) {
    const png_byte* pixel = pixels.data() + p * stored;
    if (shape.channels == 1) {
      double gray = stored == 1 ? pixel[0] : 0.299 * pixel[0] + 0.587 * pixel[1] + 0.114 * pixel[2];
      example[p] = float(gray / 255.0);
    } else {
      for (int c = 0; c < 3; ++c)
        example[size_t(c) * plane + p] = pixel[stored == 1 ? 0 : c] / 255.0f;
    }
  }
  return example;
}

int predict(const std::vector<std::string>& rawArgs) {
  Arguments args = parseArguments("predict", rawArgs, {"--load", "--top"}, {}, true);
  require(args, "predict", "--load");
  if (args.positional.empty()) throw UsageError("predict needs one or more IMAGE.png files");
  const cnnc::NetworkInfo& info = network();
  int top = args.has("--top") ? int(integerOption(args, "--top", 1, info.outputSize)) : 3;
  top = std::min<int>(top, int(info.outputSize));

  net::Model model(0);
  model.load(args.get("--load"));
  std::vector<float> inputs;
  for (const std::string& path : args.positional) {
    std::vector<float> example = readImage(path);
    inputs.insert(inputs.end(), example.begin(), example.end());
  }
  const int count = int(args.positional.size());
  const size_t outputs = size_t(info.outputSize);
  std::vector<float> out(size_t(count) * outputs);
  model.forward(inputs.data(), count, out.data());

  // Probabilities: the output itself after a trailing softmax, else its softmax.
  const bool softmaxOutput = std::string(info.layers[info.layerCount - 1].kind) == "softmax";
  for (int k = 0; k < count; ++k) {
    const float* row = out.data() + size_t(k) * outputs;
    std::vector<double> probability(row, row + outputs);
    if (!softmaxOutput) {
      double largest = *std::max_element(probability.begin(), probability.end()), sum = 0;
      for (double& p : probability) sum += (p = std::exp(p - largest));
      for (double& p : probability) p /= sum;
    }
    std::vector<int> order(outputs);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return probability[size_t(a)] > probability[size_t(b)]; });
    std::printf("%s: class %d (%.4f)  top:", args.positional[size_t(k)].c_str(), order[0],
                probability[size_t(order[0])]);
    for (int i = 0; i < top; ++i)
      std::printf(" %d=%.4f", order[size_t(i)], probability[size_t(order[size_t(i)])]);
    std::printf("\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string name = networkName();
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.empty()) throw UsageError("no command given (train, eval or predict)");
    const std::string command = args[0];
    std::vector<std::string> rest(args.begin() + 1, args.end());
    if (command == "--help" || command == "-h" || command == "help") throw HelpRequested{};
    if (command == "train") return train(rest);
    if (command == "eval") return eval(rest);
    if (command == "predict") return predict(rest);
    throw UsageError("unknown command '" + command + "' (expected train, eval or predict)");
  } catch (const HelpRequested&) {
    std::cout << usage();
    return 0;
  } catch (const UsageError& e) {
    std::cerr << name << ": error: " << e.what() << "\n\n" << usage();
    return 1;
  } catch (const cnnc::Error& e) {
    std::cerr << name << ": error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << name << ": error: " << e.what() << "\n";
    return 1;
  }
}
