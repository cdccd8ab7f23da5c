//! Parsing of `key = value` macro arguments and doc comments, collecting every error.

use proc_macro2::Span;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, Lit, LitInt, LitStr, Meta, MetaNameValue, Token};

/// Accumulates errors so that one build reports all of them.
#[derive(Default)]
pub(crate) struct Errors {
    errors: Option<syn::Error>,
}

impl Errors {
    pub(crate) fn push(&mut self, span: Span, msg: impl std::fmt::Display) {
        let e = syn::Error::new(span, msg);
        match &mut self.errors {
            Some(all) => all.combine(e),
            None => self.errors = Some(e),
        }
    }

    pub(crate) fn push_err(&mut self, e: syn::Error) {
        match &mut self.errors {
            Some(all) => all.combine(e),
            None => self.errors = Some(e),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_none()
    }

    pub(crate) fn to_compile_errors(&self) -> proc_macro2::TokenStream {
        self.errors
            .as_ref()
            .map(syn::Error::to_compile_error)
            .unwrap_or_default()
    }
}

/// A literal argument value.
pub(crate) enum Value {
    Str(LitStr),
    Int(LitInt),
}

/// One `key = value` or bare `key` argument.
pub(crate) struct Arg {
    pub(crate) key: String,
    pub(crate) key_span: Span,
    pub(crate) value: Option<Value>,
}

impl Arg {
    pub(crate) fn str(&self, errors: &mut Errors) -> Option<LitStr> {
        if let Some(Value::Str(s)) = &self.value {
            return Some(s.clone());
        }
        errors.push(
            self.key_span,
            format!("`{}` takes a string: `{} = \"...\"`", self.key, self.key),
        );
        None
    }

    pub(crate) fn int(&self, errors: &mut Errors) -> Option<LitInt> {
        if let Some(Value::Int(i)) = &self.value {
            return Some(i.clone());
        }
        errors.push(
            self.key_span,
            format!("`{}` takes an integer: `{} = 64`", self.key, self.key),
        );
        None
    }

    pub(crate) fn flag(&self, errors: &mut Errors) -> bool {
        if self.value.is_some() {
            errors.push(
                self.key_span,
                format!("`{}` is a flag and takes no value", self.key),
            );
        }
        true
    }
}

/// Parses `key = "str" | key = 123 | key` arguments, rejecting keys not in `known` and
/// duplicates.
pub(crate) fn parse_args(
    tokens: proc_macro2::TokenStream,
    known: &[&str],
    what: &str,
    errors: &mut Errors,
) -> Vec<Arg> {
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens) {
        Ok(m) => m,
        Err(e) => {
            errors.push_err(e);
            return Vec::new();
        }
    };
    let mut args: Vec<Arg> = Vec::new();
    for meta in metas {
        let (path, value) = match meta {
            Meta::Path(p) => (p, None),
            Meta::NameValue(MetaNameValue { path, value, .. }) => {
                let value = match value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    }) => Some(Value::Str(s)),
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(i), ..
                    }) => Some(Value::Int(i)),
                    other => {
                        errors.push(other.span(), "expected a string or integer literal");
                        continue;
                    }
                };
                (path, value)
            }
            Meta::List(l) => {
                errors.push(l.span(), "expected `key = value`");
                continue;
            }
        };
        let key = path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        if !known.contains(&key.as_str()) {
            errors.push(
                path.span(),
                format!(
                    "unknown argument `{}` for {what}; expected one of: {}",
                    quote::ToTokens::to_token_stream(&path),
                    known.join(", ")
                ),
            );
            continue;
        }
        if args.iter().any(|a| a.key == key) {
            errors.push(path.span(), format!("`{key}` is given twice"));
            continue;
        }
        args.push(Arg {
            key,
            key_span: path.span(),
            value,
        });
    }
    args
}

/// Arguments of every `#[name(...)]` attribute in `attrs`.
pub(crate) fn helper_args(
    attrs: &[Attribute],
    name: &str,
    known: &[&str],
    errors: &mut Errors,
) -> Vec<Arg> {
    let mut out = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident(name)) {
        match &attr.meta {
            Meta::List(list) => out.extend(parse_args(
                list.tokens.clone(),
                known,
                &format!("`#[{name}]`"),
                errors,
            )),
            other => errors.push(
                other.span(),
                format!("expected `#[{name}(key = value, ...)]`"),
            ),
        }
    }
    out
}

/// The doc comment as one line of text, or `None` when there is none.
pub(crate) fn doc_brief(attrs: &[Attribute]) -> Option<String> {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(MetaNameValue {
                value:
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    }),
                ..
            }) => Some(s.value().trim().to_string()),
            _ => None,
        })
        .collect();
    let brief = lines
        .iter()
        .map(String::as_str)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!brief.is_empty()).then_some(brief)
}

/// Maps a `stability = "..."` value to the variant name.
pub(crate) fn stability(lit: &LitStr, errors: &mut Errors) -> Option<syn::Ident> {
    let variant = match lit.value().as_str() {
        "experimental" => "Experimental",
        "stable" => "Stable",
        "deprecated" => "Deprecated",
        other => {
            errors.push(
                lit.span(),
                format!(
                    "unknown stability `{other}`; expected `experimental`, `stable` or `deprecated`"
                ),
            );
            return None;
        }
    };
    Some(syn::Ident::new(variant, Span::call_site()))
}
