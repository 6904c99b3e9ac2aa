//! Two small, checked edits of the pinned ONNX files, made in memory after their sha256 check
//! (the files on disk stay the ones the registry published):
//!
//! - [`strip_initializer_inputs`]: SFace (exported with IR version 6) lists each of its 174
//!   weights as a graph input too. ONNX Runtime must then treat every weight as something a
//!   caller may override at run time, so it cannot fold BatchNorm into the convolutions or
//!   pre-pack the weights: the model ran at about half the speed it can. Removing those inputs
//!   (not the weights) makes them constants again; the arithmetic is unchanged.
//! - [`prelu_as_elementwise`]: SFace's 27 PRelu activations (a slope per channel) took half of its
//!   time: ONNX Runtime's PRelu is a generic broadcasting loop that also forces its blocked
//!   (NCHWc) convolution layout back to plain NCHW around each of them. Written as the
//!   elementwise ops it equals (below), the same model ran 1.7x faster with bit-identical
//!   outputs.
//! - [`symbolic_dims`]: YuNet declares a fixed 1x3x640x640 input, which ONNX Runtime enforces,
//!   though the network is fully convolutional and runs at any multiple of 32 (OpenCV sets the
//!   size per image). Naming those dimensions instead lets the detector run at the size chosen
//!   from each photo.
//!
//! ONNX files are protocol buffers. Only the few fields named below are read; everything else
//! is copied byte for byte, so no protobuf schema (and no unknown field lost by one) is
//! involved. Field numbers are those of onnx.proto3.

use std::collections::HashSet;

/// `ModelProto.graph`.
const MODEL_GRAPH: u32 = 7;
/// `GraphProto.node`.
const GRAPH_NODE: u32 = 1;
/// `NodeProto.input`, `.output`, `.name` and `.op_type`.
const NODE_INPUT: u32 = 1;
const NODE_OUTPUT: u32 = 2;
const NODE_NAME: u32 = 3;
const NODE_OP_TYPE: u32 = 4;
/// `TensorProto.data_type`, `.float_data` and `.raw_data`.
const TENSOR_DATA_TYPE: u32 = 2;
const TENSOR_FLOAT_DATA: u32 = 4;
const TENSOR_RAW_DATA: u32 = 9;
/// `TensorProto.DataType.FLOAT`.
const DATA_TYPE_FLOAT: u64 = 1;
/// `GraphProto.initializer`, `.input` and `.output`.
const GRAPH_INITIALIZER: u32 = 5;
const GRAPH_INPUT: u32 = 11;
const GRAPH_OUTPUT: u32 = 12;
/// `TensorProto.name`.
const TENSOR_NAME: u32 = 8;
/// `ValueInfoProto.name` and `.type`.
const VALUE_NAME: u32 = 1;
const VALUE_TYPE: u32 = 2;
/// `TypeProto.tensor_type`, `TypeProto.Tensor.shape`, `TensorShapeProto.dim`.
const TYPE_TENSOR: u32 = 1;
const TENSOR_SHAPE: u32 = 2;
const SHAPE_DIM: u32 = 1;
/// `TensorShapeProto.Dimension.dim_param`.
const DIM_PARAM: u32 = 2;

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

/// Why a model could not be edited: the bytes are not the protobuf they should be.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EditError {
    #[error("the ONNX protobuf is truncated")]
    Truncated,
    #[error("the ONNX protobuf has an unsupported wire type {0}")]
    WireType(u8),
    #[error("the ONNX graph has no {kind} named {name:?}")]
    Missing { kind: &'static str, name: String },
    #[error("the ONNX node {node:?} is not what this edit expects: {reason}")]
    Unexpected { node: String, reason: &'static str },
}

/// One field of a message: its number, wire type, and bytes.
struct Field<'a> {
    number: u32,
    wire: u8,
    /// The whole field, tag included, to copy it unchanged.
    raw: &'a [u8],
    /// The contents of a length-delimited field (empty otherwise).
    payload: &'a [u8],
}

/// What to do with one field while rewriting a message.
enum Edit {
    Keep,
    Drop,
    /// Replace a length-delimited field's contents.
    Replace(Vec<u8>),
    /// Replace a length-delimited field by several of the same number.
    Expand(Vec<Vec<u8>>),
}

fn read_varint(buf: &[u8], at: &mut usize) -> Result<u64, EditError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at).ok_or(EditError::Truncated)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(EditError::Truncated)
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Append a length-delimited field.
fn write_len(out: &mut Vec<u8>, number: u32, payload: &[u8]) {
    write_varint(out, (u64::from(number) << 3) | u64::from(WIRE_LEN));
    write_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

fn fields(buf: &[u8]) -> Result<Vec<Field<'_>>, EditError> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < buf.len() {
        let start = at;
        let tag = read_varint(buf, &mut at)?;
        let (number, wire) = ((tag >> 3) as u32, (tag & 7) as u8);
        let mut payload: &[u8] = &[];
        match wire {
            WIRE_VARINT => {
                read_varint(buf, &mut at)?;
            }
            WIRE_FIXED64 => at += 8,
            WIRE_FIXED32 => at += 4,
            WIRE_LEN => {
                let len = usize::try_from(read_varint(buf, &mut at)?)
                    .map_err(|_| EditError::Truncated)?;
                let end = at.checked_add(len).ok_or(EditError::Truncated)?;
                payload = buf.get(at..end).ok_or(EditError::Truncated)?;
                at = end;
            }
            other => return Err(EditError::WireType(other)),
        }
        let raw = buf.get(start..at).ok_or(EditError::Truncated)?;
        out.push(Field {
            number,
            wire,
            raw,
            payload,
        });
    }
    Ok(out)
}

/// Copy `buf`, letting `edit` keep, drop or replace each field.
fn rewrite(
    buf: &[u8],
    mut edit: impl FnMut(&Field<'_>) -> Result<Edit, EditError>,
) -> Result<Vec<u8>, EditError> {
    let mut out = Vec::with_capacity(buf.len());
    for field in fields(buf)? {
        match edit(&field)? {
            Edit::Keep => out.extend_from_slice(field.raw),
            Edit::Drop => {}
            Edit::Replace(payload) => write_len(&mut out, field.number, &payload),
            Edit::Expand(payloads) => {
                for payload in payloads {
                    write_len(&mut out, field.number, &payload);
                }
            }
        }
    }
    Ok(out)
}

/// The string field `number` of a message, if present.
fn string_field(message: &[u8], number: u32) -> Result<Option<&[u8]>, EditError> {
    Ok(fields(message)?
        .into_iter()
        .find(|f| f.number == number && f.wire == WIRE_LEN)
        .map(|f| f.payload))
}

/// Every string of the repeated field `number` of a message, in order.
fn string_fields(message: &[u8], number: u32) -> Result<Vec<&[u8]>, EditError> {
    Ok(fields(message)?
        .into_iter()
        .filter(|f| f.number == number && f.wire == WIRE_LEN)
        .map(|f| f.payload)
        .collect())
}

/// The values of a float initializer (`float_data`, packed or not, or `raw_data`).
fn float_values(tensor: &[u8]) -> Result<Option<Vec<f32>>, EditError> {
    let mut values = Vec::new();
    let mut is_float = false;
    let le = |bytes: &[u8]| -> Result<Vec<f32>, EditError> {
        if !bytes.len().is_multiple_of(4) {
            return Err(EditError::Truncated);
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    for field in fields(tensor)? {
        match (field.number, field.wire) {
            (TENSOR_DATA_TYPE, WIRE_VARINT) => is_float = varint_value(&field)? == DATA_TYPE_FLOAT,
            (TENSOR_FLOAT_DATA, WIRE_LEN) | (TENSOR_RAW_DATA, WIRE_LEN) => {
                values.extend(le(field.payload)?)
            }
            (TENSOR_FLOAT_DATA, WIRE_FIXED32) => values.extend(le(&field.raw[1..])?),
            _ => {}
        }
    }
    Ok(is_float.then_some(values))
}

/// The value of a varint field.
fn varint_value(field: &Field<'_>) -> Result<u64, EditError> {
    let mut at = 0;
    read_varint(field.raw, &mut at)?; // the tag
    read_varint(field.raw, &mut at)
}

/// A NodeProto of `op_type` from `inputs` to `output`, named `name`.
fn node(op_type: &str, name: &str, inputs: &[&[u8]], output: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for input in inputs {
        write_len(&mut out, NODE_INPUT, input);
    }
    write_len(&mut out, NODE_OUTPUT, output);
    write_len(&mut out, NODE_NAME, name.as_bytes());
    write_len(&mut out, NODE_OP_TYPE, op_type.as_bytes());
    out
}

/// A float scalar initializer.
fn scalar(name: &[u8], value: f32) -> Vec<u8> {
    let mut out = Vec::new();
    write_varint(
        &mut out,
        (u64::from(TENSOR_DATA_TYPE) << 3) | u64::from(WIRE_VARINT),
    );
    write_varint(&mut out, DATA_TYPE_FLOAT);
    write_len(&mut out, TENSOR_NAME, name);
    write_len(&mut out, TENSOR_RAW_DATA, &value.to_le_bytes());
    out
}

/// Rewrite the model's graph with `edit`.
fn edit_graph(
    model: &[u8],
    mut edit: impl FnMut(&[u8]) -> Result<Vec<u8>, EditError>,
) -> Result<Vec<u8>, EditError> {
    rewrite(model, |field| {
        if field.number == MODEL_GRAPH && field.wire == WIRE_LEN {
            Ok(Edit::Replace(edit(field.payload)?))
        } else {
            Ok(Edit::Keep)
        }
    })
}

/// The model without the graph inputs that merely repeat an initializer (a weight).
pub fn strip_initializer_inputs(model: &[u8]) -> Result<Vec<u8>, EditError> {
    edit_graph(model, |graph| {
        let mut weights = HashSet::new();
        for field in fields(graph)? {
            if field.number == GRAPH_INITIALIZER
                && field.wire == WIRE_LEN
                && let Some(name) = string_field(field.payload, TENSOR_NAME)?
            {
                weights.insert(name.to_vec());
            }
        }
        rewrite(graph, |field| {
            if field.number == GRAPH_INPUT && field.wire == WIRE_LEN {
                let name = string_field(field.payload, VALUE_NAME)?.unwrap_or_default();
                if weights.contains(name) {
                    return Ok(Edit::Drop);
                }
            }
            Ok(Edit::Keep)
        })
    })
}

/// The name of the zero scalar that [`prelu_as_elementwise`] adds when a layer needs it.
const PRELU_ZERO: &[u8] = b"facegate_prelu_zero";

/// Every `PRelu(x, slope)` whose slope is a float initializer, written as elementwise ops that
/// give bit-identical results and that ONNX Runtime runs fast:
/// - every slope at most 1: `Max(x, x * slope)` (for x > 0, `x * slope <= x`; below, the
///   reverse);
/// - every slope at least 1: `Min(x, x * slope)`;
/// - mixed: `Relu(x) + Min(x, 0) * slope` (one term is exactly zero on either side).
///
/// Returns the model and how many PRelu nodes were rewritten.
pub fn prelu_as_elementwise(model: &[u8]) -> Result<(Vec<u8>, usize), EditError> {
    let mut rewritten = 0;
    let edited = edit_graph(model, |graph| {
        let mut slopes = std::collections::HashMap::new();
        for field in fields(graph)? {
            if field.number == GRAPH_INITIALIZER
                && field.wire == WIRE_LEN
                && let Some(name) = string_field(field.payload, TENSOR_NAME)?
                && let Some(values) = float_values(field.payload)?
            {
                slopes.insert(name.to_vec(), values);
            }
        }
        let mut zero_needed = false;
        let mut edited = rewrite(graph, |field| {
            if field.number != GRAPH_NODE || field.wire != WIRE_LEN {
                return Ok(Edit::Keep);
            }
            if string_field(field.payload, NODE_OP_TYPE)? != Some(&b"PRelu"[..]) {
                return Ok(Edit::Keep);
            }
            let (inputs, outputs) = (
                string_fields(field.payload, NODE_INPUT)?,
                string_fields(field.payload, NODE_OUTPUT)?,
            );
            let name = String::from_utf8_lossy(
                string_field(field.payload, NODE_NAME)?.unwrap_or_default(),
            )
            .into_owned();
            let unexpected = |reason| EditError::Unexpected {
                node: name.clone(),
                reason,
            };
            let ([x, slope], [y]) = (inputs.as_slice(), outputs.as_slice()) else {
                return Err(unexpected("not two inputs and one output"));
            };
            let values = slopes
                .get(*slope)
                .filter(|values| !values.is_empty())
                .ok_or_else(|| unexpected("its slope is not a float initializer"))?;
            let part = |suffix: &str| [*y, suffix.as_bytes()].concat();
            let named = |suffix: &str| format!("{name}{suffix}");
            let (scaled, positive, negative) = (part("__ax"), part("__pos"), part("__neg"));
            let nodes = if values.iter().all(|a| *a <= 1.0) {
                vec![
                    node("Mul", &named("__ax"), &[x, slope], &scaled),
                    node("Max", &name, &[x, &scaled], y),
                ]
            } else if values.iter().all(|a| *a >= 1.0) {
                vec![
                    node("Mul", &named("__ax"), &[x, slope], &scaled),
                    node("Min", &name, &[x, &scaled], y),
                ]
            } else {
                zero_needed = true;
                vec![
                    node("Relu", &named("__pos"), &[x], &positive),
                    node("Min", &named("__neg"), &[x, PRELU_ZERO], &negative),
                    node("Mul", &named("__ax"), &[&negative, slope], &scaled),
                    node("Add", &name, &[&positive, &scaled], y),
                ]
            };
            rewritten += 1;
            Ok(Edit::Expand(nodes))
        })?;
        if zero_needed {
            write_len(&mut edited, GRAPH_INITIALIZER, &scalar(PRELU_ZERO, 0.0));
        }
        Ok(edited)
    })?;
    Ok((edited, rewritten))
}

/// Which dimensions of one graph input or output to name.
pub struct Rename<'a> {
    /// The input or output (`None`: every output).
    pub value: Option<&'a str>,
    pub output: bool,
    /// (dimension index, symbolic name).
    pub dims: &'a [(usize, &'a str)],
}

/// Replace the fixed sizes of the listed dimensions by symbolic names, so the model runs at
/// other sizes.
pub fn symbolic_dims(model: &[u8], renames: &[Rename<'_>]) -> Result<Vec<u8>, EditError> {
    edit_graph(model, |graph| {
        let mut seen = vec![false; renames.len()];
        let edited = rewrite(graph, |field| {
            let output = match field.number {
                GRAPH_INPUT => false,
                GRAPH_OUTPUT => true,
                _ => return Ok(Edit::Keep),
            };
            let name = string_field(field.payload, VALUE_NAME)?.unwrap_or_default();
            for (i, rename) in renames.iter().enumerate() {
                let named = rename.value.is_none_or(|value| value.as_bytes() == name);
                if rename.output == output && named {
                    seen[i] = true;
                    return Ok(Edit::Replace(rename_dims(field.payload, rename.dims)?));
                }
            }
            Ok(Edit::Keep)
        })?;
        if let Some(i) = seen.iter().position(|seen| !seen) {
            return Err(EditError::Missing {
                kind: if renames[i].output { "output" } else { "input" },
                name: renames[i].value.unwrap_or("*").to_string(),
            });
        }
        Ok(edited)
    })
}

/// A rewrite of one nested message's bytes.
type MessageEdit<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>, EditError> + 'a;

/// ValueInfoProto -> type -> tensor_type -> shape -> dim[i] := Dimension { dim_param }.
fn rename_dims(value_info: &[u8], dims: &[(usize, &str)]) -> Result<Vec<u8>, EditError> {
    let nested = |buf: &[u8], number: u32, inner: &MessageEdit<'_>| {
        rewrite(buf, |field| {
            if field.number == number && field.wire == WIRE_LEN {
                Ok(Edit::Replace(inner(field.payload)?))
            } else {
                Ok(Edit::Keep)
            }
        })
    };
    let shape = |shape: &[u8]| {
        let mut index = 0;
        rewrite(shape, |field| {
            if field.number != SHAPE_DIM {
                return Ok(Edit::Keep);
            }
            let this = index;
            index += 1;
            Ok(match dims.iter().find(|(i, _)| *i == this) {
                Some((_, param)) => {
                    let mut dimension = Vec::new();
                    write_len(&mut dimension, DIM_PARAM, param.as_bytes());
                    Edit::Replace(dimension)
                }
                None => Edit::Keep,
            })
        })
    };
    let tensor = |tensor: &[u8]| nested(tensor, TENSOR_SHAPE, &shape);
    let ty = |ty: &[u8]| nested(ty, TYPE_TENSOR, &tensor);
    nested(value_info, VALUE_TYPE, &ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(fields: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (number, payload) in fields {
            write_len(&mut out, *number, payload);
        }
        out
    }

    fn dim_value(n: u64) -> Vec<u8> {
        let mut out = vec![(1 << 3) as u8];
        write_varint(&mut out, n);
        out
    }

    /// A ValueInfoProto named `name` of shape `dims`.
    fn value_info(name: &str, dims: &[u64]) -> Vec<u8> {
        let shape = message(
            &dims
                .iter()
                .map(|&d| (SHAPE_DIM, dim_value(d)))
                .collect::<Vec<_>>(),
        );
        let tensor = message(&[(TENSOR_SHAPE, shape)]);
        let ty = message(&[(TYPE_TENSOR, tensor)]);
        message(&[(VALUE_NAME, name.as_bytes().to_vec()), (VALUE_TYPE, ty)])
    }

    fn model(graph: Vec<u8>) -> Vec<u8> {
        // ir_version (field 1, varint 6) before the graph, to check it is copied unchanged.
        let mut out = vec![1 << 3, 6];
        write_len(&mut out, MODEL_GRAPH, &graph);
        out
    }

    fn graph_values(model: &[u8], number: u32) -> Vec<Vec<u8>> {
        let graph = fields(model)
            .unwrap()
            .into_iter()
            .find(|f| f.number == MODEL_GRAPH)
            .unwrap()
            .payload
            .to_vec();
        fields(&graph)
            .unwrap()
            .into_iter()
            .filter(|f| f.number == number)
            .map(|f| f.payload.to_vec())
            .collect()
    }

    #[test]
    fn weights_leave_the_inputs_and_stay_initializers() {
        let weight = message(&[(TENSOR_NAME, b"w".to_vec())]);
        let graph = message(&[
            (GRAPH_INITIALIZER, weight.clone()),
            (GRAPH_INPUT, value_info("data", &[1, 3])),
            (GRAPH_INPUT, value_info("w", &[3])),
        ]);
        let edited = strip_initializer_inputs(&model(graph)).unwrap();
        assert_eq!(&edited[..2], &[8u8, 6]);
        assert_eq!(
            graph_values(&edited, GRAPH_INPUT),
            vec![value_info("data", &[1, 3])]
        );
        assert_eq!(graph_values(&edited, GRAPH_INITIALIZER), vec![weight]);
    }

    #[test]
    fn fixed_dimensions_become_symbolic() {
        let graph = message(&[
            (GRAPH_INPUT, value_info("input", &[1, 3, 640, 640])),
            (GRAPH_OUTPUT, value_info("cls_8", &[1, 6400, 1])),
        ]);
        let edited = symbolic_dims(
            &model(graph),
            &[
                Rename {
                    value: Some("input"),
                    output: false,
                    dims: &[(2, "height"), (3, "width")],
                },
                Rename {
                    value: None,
                    output: true,
                    dims: &[(1, "cells")],
                },
            ],
        )
        .unwrap();
        let input = &graph_values(&edited, GRAPH_INPUT)[0];
        let ty = string_field(input, VALUE_TYPE).unwrap().unwrap();
        let tensor = string_field(ty, TYPE_TENSOR).unwrap().unwrap();
        let shape = string_field(tensor, TENSOR_SHAPE).unwrap().unwrap();
        let dims: Vec<Vec<u8>> = fields(shape)
            .unwrap()
            .iter()
            .map(|f| f.payload.to_vec())
            .collect();
        assert_eq!(dims[0], dim_value(1));
        assert_eq!(dims[2], message(&[(DIM_PARAM, b"height".to_vec())]));
        assert_eq!(dims[3], message(&[(DIM_PARAM, b"width".to_vec())]));
        assert!(edited.windows(5).any(|w| w == b"cells"));
    }

    /// A float initializer in `float_data`, packed, as SFace stores its slopes.
    fn floats(name: &str, values: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        write_varint(&mut out, u64::from(TENSOR_DATA_TYPE) << 3);
        write_varint(&mut out, DATA_TYPE_FLOAT);
        let packed: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        write_len(&mut out, TENSOR_FLOAT_DATA, &packed);
        write_len(&mut out, TENSOR_NAME, name.as_bytes());
        out
    }

    fn ops_and_inputs(model: &[u8]) -> Vec<(String, Vec<String>)> {
        graph_values(model, GRAPH_NODE)
            .iter()
            .map(|n| {
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                (
                    text(string_field(n, NODE_OP_TYPE).unwrap().unwrap()),
                    string_fields(n, NODE_INPUT)
                        .unwrap()
                        .into_iter()
                        .map(text)
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn prelu_becomes_the_elementwise_ops_its_slopes_allow() {
        let graph = message(&[
            (GRAPH_INITIALIZER, floats("low", &[0.25, -0.5, 1.0])),
            (GRAPH_INITIALIZER, floats("high", &[1.0, 1.5])),
            (GRAPH_INITIALIZER, floats("mixed", &[0.5, 1.5])),
            (GRAPH_NODE, node("Conv", "conv", &[b"data"], b"x")),
            (GRAPH_NODE, node("PRelu", "p1", &[b"x", b"low"], b"y1")),
            (GRAPH_NODE, node("PRelu", "p2", &[b"y1", b"high"], b"y2")),
            (GRAPH_NODE, node("PRelu", "p3", &[b"y2", b"mixed"], b"y3")),
        ]);
        let (edited, count) = prelu_as_elementwise(&model(graph)).unwrap();
        assert_eq!(count, 3);
        let expected = [
            ("Conv", "data"),
            ("Mul", "x,low"),
            ("Max", "x,y1__ax"),
            ("Mul", "y1,high"),
            ("Min", "y1,y2__ax"),
            ("Relu", "y2"),
            ("Min", "y2,facegate_prelu_zero"),
            ("Mul", "y3__neg,mixed"),
            ("Add", "y3__pos,y3__ax"),
        ];
        let ops: Vec<(String, String)> = ops_and_inputs(&edited)
            .into_iter()
            .map(|(op, inputs)| (op, inputs.join(",")))
            .collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(op, inputs)| (op.to_string(), inputs.to_string()))
            .collect();
        assert_eq!(ops, expected);
        // The mixed layer's zero is added once, as a float scalar.
        let zero = graph_values(&edited, GRAPH_INITIALIZER)
            .into_iter()
            .find(|t| string_field(t, TENSOR_NAME).unwrap() == Some(PRELU_ZERO))
            .expect("the zero initializer");
        assert_eq!(float_values(&zero).unwrap(), Some(vec![0.0]));
    }

    #[test]
    fn a_prelu_whose_slope_is_not_a_weight_is_refused() {
        let graph = message(&[(GRAPH_NODE, node("PRelu", "p", &[b"x", b"runtime"], b"y"))]);
        assert!(matches!(
            prelu_as_elementwise(&model(graph)),
            Err(EditError::Unexpected { .. })
        ));
    }

    #[test]
    fn a_missing_input_or_a_cut_file_is_an_error() {
        let graph = message(&[(GRAPH_INPUT, value_info("data", &[1]))]);
        let missing = symbolic_dims(
            &model(graph),
            &[Rename {
                value: Some("input"),
                output: false,
                dims: &[(2, "h")],
            }],
        );
        assert!(matches!(missing, Err(EditError::Missing { .. })));
        let mut cut = model(message(&[(GRAPH_INPUT, value_info("data", &[1]))]));
        cut.truncate(cut.len() - 2);
        assert_eq!(strip_initializer_inputs(&cut), Err(EditError::Truncated));
    }
}
