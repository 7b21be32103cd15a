"""Model compression beyond int8: tfmot's magnitude sparsity and weight clustering (and their
preserving QAT schemes). Each function takes and returns tf_keras models; stages wrap them."""
