/* Default prefix for the kernels when they are compiled on their own (tests); a generated
 * model directory carries its own tvc_prefix.h naming the model. */
#ifndef TVC_PREFIX_H
#define TVC_PREFIX_H
#define TVC_FN(name) tvc_##name
#endif
