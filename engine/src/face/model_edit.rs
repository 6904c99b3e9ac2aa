//! Two small, checked edits of the pinned ONNX files, made in memory after their sha256 check
//! (the files on disk stay the ones the registry published):
//!
//! - [`strip_initializer_inputs`]: SFace (exported with IR version 6) lists each of its 174
//!   weights as a graph input too. ONNX Runtime must then treat every weight as something a
//!   caller may override at run time, so it cannot fold BatchNorm into the convolutions or
//!   pre-pack the weights: the model ran at about half the speed it can. Removing those inputs
//!   (not the weights) makes them constants again; the arithmetic is unchanged.
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
