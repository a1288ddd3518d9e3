package api

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPIDoc is the API's OpenAPI 3 document; a test keeps it and the
// routes in step.
//
//go:embed openapi.yaml
var openAPIDoc []byte

func (s *Server) openAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/yaml", openAPIDoc)
}
