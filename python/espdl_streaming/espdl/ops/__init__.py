"""The simulator's operator kernels, one module per kind of operator, each the specification of one file
of the C++ host engine (its port):

=================  =======================  ==========================================================
module             port (src/host/)         operators
=================  =======================  ==========================================================
``kernels``        ``host_kernels.hpp``     what a kernel sees (values, the node run), the rounding
``dense``          ``ops_dense.cpp``        Conv, Gemm, MatMul, the pools
``elementwise``    ``ops_elementwise.cpp``  Add/Sub/Mul/Div, the activations and tables, Requantize
``layout``         ``ops_layout.cpp``       data movement, Pad, InsertZeros, StreamingCache
``norm``           ``ops_norm.cpp``         Gather, Softmax, LayerNormalization, Reduce*
``quant``          ``ops_quant.cpp``        QuantizeLinear, DequantizeLinear
``recurrent``      ``ops_recurrent.cpp``    GRU, LSTM
=================  =======================  ==========================================================

Every ops module exports ``OPS``, the ONNX op types it implements; the simulator (espdl/simulator.py)
dispatches on their union, as the engine's op table (host_ops.cpp) does on its prepare functions.
tests/test_layout.py checks that each module implements exactly the op types its C++ file registers.
"""
