/*
 * The op table: espdl/simulator.py's KERNELS, one line per operator.
 */
#include "host_ops.hpp"

namespace espdl_streaming::host {
namespace {

const op_entry k_ops[] = {
    {"InsertZeros", prepare_insert_zeros},
    {"GRU", prepare_gru},
    {"LSTM", prepare_lstm},
    {"Pad", prepare_pad},
    {"Conv", prepare_conv},
    {"Gemm", prepare_gemm},
    {"MatMul", prepare_matmul},
    {"AveragePool", prepare_average_pool},
    {"MaxPool", prepare_max_pool},
    {"GlobalAveragePool", prepare_global_average_pool},
    {"Add", prepare_add},
    {"Sub", prepare_sub},
    {"Mul", prepare_mul},
    {"Div", prepare_div},
    {"Concat", prepare_concat},
    {"Slice", prepare_slice},
    {"Transpose", prepare_transpose},
    {"Reshape", prepare_reshape},
    {"Flatten", prepare_flatten},
    {"Squeeze", prepare_squeeze},
    {"Unsqueeze", prepare_unsqueeze},
    {"RequantizeLinear", prepare_requantize},
    {"QuantizeLinear", prepare_quantize_linear},
    {"DequantizeLinear", prepare_quantize_linear},
    {"StreamingCache", prepare_streaming_cache},
    {"Gather", prepare_gather},
    {"Softmax", prepare_softmax},
    {"LayerNormalization", prepare_layer_normalization},
    {"ReduceMean", prepare_reduce},
    {"ReduceMax", prepare_reduce},
    {"ReduceMin", prepare_reduce},
    {"ReduceSum", prepare_reduce},
    {"LUT", prepare_unary},
    {"Relu", prepare_unary},
    {"LeakyRelu", prepare_unary},
    {"PRelu", prepare_unary},
    {"Sigmoid", prepare_unary},
    {"Tanh", prepare_unary},
    {"HardSigmoid", prepare_unary},
    {"HardSwish", prepare_unary},
    {"Swish", prepare_unary},
    {"SiLU", prepare_unary},
    {"Clip", prepare_unary},
    {"Identity", prepare_unary},
    {nullptr, nullptr},
};

} // namespace

const op_entry *find_op(const str_view &op_type)
{
    for (const op_entry *e = k_ops; e->op_type != nullptr; ++e) {
        if (op_type.equals(e->op_type)) {
            return e;
        }
    }
    return nullptr;
}

} // namespace espdl_streaming::host
