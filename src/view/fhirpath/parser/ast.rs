//! The syntax tree the parser builds: [`Ast`] nodes and the binary operators
//! ([`BinOp`]) they combine.

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Implies,
    Or,
    Xor,
    And,
    In,
    Contains,
    Eq,
    Equiv,
    Ne,
    NotEquiv,
    Lt,
    Le,
    Gt,
    Ge,
    Union,
    Add,
    Sub,
    Concat,
    Mul,
    Div,
    IntDiv,
    Mod,
}

impl BinOp {
    /// The operator's text, for messages.
    pub(crate) fn text(self) -> &'static str {
        match self {
            Self::Implies => "implies",
            Self::Or => "or",
            Self::Xor => "xor",
            Self::And => "and",
            Self::In => "in",
            Self::Contains => "contains",
            Self::Eq => "=",
            Self::Equiv => "~",
            Self::Ne => "!=",
            Self::NotEquiv => "!~",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Union => "|",
            Self::Add => "+",
            Self::Sub => "-",
            Self::Concat => "&",
            Self::Mul => "*",
            Self::Div => "/",
            Self::IntDiv => "div",
            Self::Mod => "mod",
        }
    }
}

/// A FHIRPath syntax tree. `pos` fields are byte offsets into the text, for messages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ast {
    /// `{}`.
    Empty,
    Bool(bool),
    /// An integer or decimal literal, as written.
    Number(String),
    Str(String),
    /// `@...` date or date-time literal, without the `@`.
    DateTime(String, usize),
    /// `@T...` time literal, without the `@T`.
    Time(String, usize),
    /// A number followed by a unit: a quantity literal.
    Quantity(usize),
    /// `%name`.
    Env(String, usize),
    /// `$this`, `$index`, `$total`.
    Special(String, usize),
    /// A name at the start of a path (or after `.`): an element of the input.
    Ident(String, usize),
    /// A function call: `name(args)`, applied to `input` or, at the start of a path,
    /// to the context.
    Call {
        input: Option<Box<Ast>>,
        name: String,
        args: Vec<Ast>,
        pos: usize,
    },
    /// `input.name`.
    Member {
        input: Box<Ast>,
        name: String,
        pos: usize,
    },
    /// `input[index]`.
    Index {
        input: Box<Ast>,
        index: Box<Ast>,
    },
    /// Unary minus (unary plus is dropped).
    Neg(Box<Ast>, usize),
    Binary {
        op: BinOp,
        lhs: Box<Ast>,
        rhs: Box<Ast>,
        pos: usize,
    },
    /// `expr is Type` (`is` true) or `expr as Type`.
    TypeOp {
        is: bool,
        expr: Box<Ast>,
        qualifier: Option<String>,
        name: String,
        pos: usize,
    },
}
