"""Run a TFLite file once in TensorFlow Lite Micro's interpreter and let its recording
allocator print (to stderr) what it allocated; the line `Arena allocation head N bytes` is the
planned (non-persistent) part of the tensor arena, where the activations live.

usage: tflm_arena.py MODEL.tflite
"""
import sys

import numpy as np
from tflite_micro.python.tflite_micro import runtime

interpreter = runtime.Interpreter.from_bytes(open(sys.argv[1], "rb").read(), arena_size=256 << 20)
details = interpreter.get_input_details(0)
interpreter.set_input(np.zeros(details["shape"], details["dtype"]), 0)
interpreter.invoke()
interpreter.print_allocations()
