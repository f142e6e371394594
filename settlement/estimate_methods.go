package settlement

// The estimation methods of estimation.md "Methods, in order", as
// run_estimates, estimates.parquet and the API name them (the keys of
// EstimateCounts).
const (
	MethodLinear  = "LIN"
	MethodLikeDay = "LDY"
	MethodZero    = "ZER"
)

// EstimateMethods are the methods in the order estimation.md tries them.
var EstimateMethods = []string{MethodLinear, MethodLikeDay, MethodZero}
