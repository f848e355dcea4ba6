/*
 * Host engine, private: the prepare function of every operator (one per op type; the table is in
 * host_ops.cpp). Adding an operator: write its prepare function (and kernel) in the ops_*.cpp file
 * of its kind, declare it here and add one line to the table.
 */
#pragma once

#include "host_kernels.hpp"

namespace espdl_streaming::host {

/* ops_dense.cpp */
esp_err_t prepare_conv(prep &p);
esp_err_t prepare_gemm(prep &p);
esp_err_t prepare_matmul(prep &p);
esp_err_t prepare_average_pool(prep &p);
esp_err_t prepare_max_pool(prep &p);
esp_err_t prepare_global_average_pool(prep &p);

/* ops_elementwise.cpp */
esp_err_t prepare_add(prep &p);
esp_err_t prepare_sub(prep &p);
esp_err_t prepare_mul(prep &p);
esp_err_t prepare_div(prep &p);
esp_err_t prepare_unary(prep &p); /* Relu, Sigmoid, ... and LUT: the math by op type */
esp_err_t prepare_requantize(prep &p);

/* ops_layout.cpp */
esp_err_t prepare_concat(prep &p);
esp_err_t prepare_slice(prep &p);
esp_err_t prepare_transpose(prep &p);
esp_err_t prepare_reshape(prep &p);
esp_err_t prepare_flatten(prep &p);
esp_err_t prepare_squeeze(prep &p);
esp_err_t prepare_unsqueeze(prep &p);
esp_err_t prepare_streaming_cache(prep &p);
esp_err_t prepare_pad(prep &p);
esp_err_t prepare_insert_zeros(prep &p);

/* ops_norm.cpp */
esp_err_t prepare_gather(prep &p);
esp_err_t prepare_softmax(prep &p);
esp_err_t prepare_layer_normalization(prep &p);
esp_err_t prepare_reduce(prep &p); /* ReduceMean, ReduceMax, ReduceMin, ReduceSum */

/* ops_quant.cpp */
esp_err_t prepare_quantize_linear(prep &p); /* QuantizeLinear, DequantizeLinear */

/* ops_recurrent.cpp */
esp_err_t prepare_gru(prep &p);
esp_err_t prepare_lstm(prep &p);

} // namespace espdl_streaming::host
